//! Issue 2: a CSV written in the real dataset's format by someone else (every
//! quirk of the contract) goes through without a crash and with every row
//! accounted for.

use revspend_core::pseudonym::Pseudonymiser;
use revspend_table::read_quarantine;

use crate::support::{Project, stderr};

const HEADER: &[u8] = b"id;safra_abertura;cidade;estado;idade;sexo;limite_total;limite_disp;data; valor ;grupo_estabelecimento;cidade_estabelecimento;pais_estabelecimento\r\n";

/// Rows in cp1252 bytes with CRLF endings, as a Windows export writes them.
fn quirky_file() -> Vec<u8> {
    let mut f = HEADER.to_vec();
    let rows: [&[u8]; 12] = [
        // line 2: the 0x82 mis-encoded service group, accented city (cp1252 0xC3).
        b"35466972063;201405;S\xc3O PAULO;SP;34;F;4700.0;612.0;02.07.2020; 1.234,56 ;SERVI\x82O;S\xc3O PAULO;BR",
        // line 3: AUTO PE AS, available limit above the total.
        b"35466972063;201405;S\xc3O PAULO;SP;34;F;4700.0;5605.0;03.07.2020; 52,00 ;AUTO PE AS;S\xc3O PAULO;BR",
        // line 4: missing amount, empty group.
        b"35466972063;201405;S\xc3O PAULO;SP;34;F;4700.0;300.0;04.07.2020; -   ;;S\xc3O JOSE DOS C;BR",
        // line 5: foreign purchase, a revenge purchase (6 % available, jewellery).
        b"81234567890123;201811;RECIFE;PE;52;M;10000.0;600.0;04.07.2020; 2.500,00 ;JOALHERIA;MIAMI;US",
        // line 6: wrong number of fields.
        b"81234567890123;201811;RECIFE;PE;52;M;10000.0;600.0;05.07.2020; 10,00 ;VAREJO",
        // line 7: impossible date.
        b"81234567890123;201811;RECIFE;PE;52;M;10000.0;600.0;31.02.2020; 10,00 ;VAREJO;RECIFE;BR",
        // line 8: amount that is not a number.
        b"81234567890123;201811;RECIFE;PE;52;M;10000.0;600.0;06.07.2020; abc ;VAREJO;RECIFE;BR",
        // line 9: id that is not digits.
        b"X123;201811;RECIFE;PE;52;M;10000.0;600.0;06.07.2020; 10,00 ;VAREJO;RECIFE;BR",
        // line 10: a good row again.
        b"81234567890123;201811;RECIFE;PE;52;M;10000.0;400.0;07.07.2020; 80,00 ;RESTAURANTE;RECIFE;BR",
        // line 11: Brazilian-formatted limits are read too.
        b"555;202001;CURITIBA;PR;23;F; 2.000,00 ; 150,00 ;07.07.2020; 19,90 ;FARMACIAS;CURITIBA;BR",
        // line 12: missing required limit.
        b"555;202001;CURITIBA;PR;23;F;2000.0;;08.07.2020; 19,90 ;FARMACIAS;CURITIBA;BR",
        // line 13: bad sex code.
        b"555;202001;CURITIBA;PR;23;X;2000.0;100.0;08.07.2020; 19,90 ;FARMACIAS;CURITIBA;BR",
    ];
    for r in rows {
        f.extend_from_slice(r);
        f.extend_from_slice(b"\r\n");
    }
    f
}

#[test]
fn every_quirk_parses_and_every_row_is_accounted_for() {
    let p = Project::new();
    p.write_raw("MiBolsillo.csv", &quirky_file());
    let out = p.build_features();
    assert!(out.status.success(), "build-features failed: {}", stderr(&out));

    let report = p.report();
    assert_eq!(report["rows_in"], 12);
    assert_eq!(report["rows_out"], 6);
    assert_eq!(report["rows_quarantined"], 6);
    assert_eq!(report["files"][0]["rows_in"], 12);
    assert_eq!(report["raw_nulls"]["valor"], 1);
    assert_eq!(report["raw_nulls"]["grupo_estabelecimento"], 1);
    assert_eq!(report["quarantine_reasons"]["row"], 1);
    assert_eq!(report["quarantine_reasons"]["data"], 1);
    assert_eq!(report["quarantine_reasons"]["valor"], 1);
    assert_eq!(report["quarantine_reasons"]["id"], 1);
    assert_eq!(report["quarantine_reasons"]["limite_disp"], 1);
    assert_eq!(report["quarantine_reasons"]["sexo"], 1);

    let q = read_quarantine(&p.out().quarantine).expect("quarantine");
    let lines: Vec<u64> = q.iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![6, 7, 8, 9, 12, 13]);
    assert!(q.iter().all(|r| r.file.ends_with("MiBolsillo.csv")));
    assert!(q[1].reason.contains("dd.mm.yyyy"), "{}", q[1].reason);
    // The quarantine keeps the decoded row so it can be fixed and replayed.
    assert!(q[2].raw.contains(" abc "), "{}", q[2].raw);

    let master = p.master();
    assert_eq!(master.height(), 6);
    let target = master
        .column("is_revenge_spending")
        .expect("target")
        .bool()
        .expect("bool");
    // Lines 5 (6 % available, jewellery) and 10 (4 %, restaurant) are
    // revenge spending, and so is line 4: 6.4 % available with an empty
    // group, which is not a vital group. Line 11 is a pharmacy (vital).
    assert_eq!(target.sum(), Some(3));

    // Ids are pseudonymised with the key from the environment.
    let customers = master.column("customer").expect("customer").str().expect("str");
    let expected = Pseudonymiser::new(b"test-key").pseudonym("35466972063");
    assert!(customers.iter().any(|c| c == Some(expected.as_str())));
    assert!(!customers.iter().any(|c| c == Some("35466972063")));

    // Mis-encoded and accented labels come out clean.
    let codes = master
        .column("group_code")
        .expect("group_code")
        .f64()
        .expect("f64");
    let servico = revspend_core::features::group_code("SERVICO") as f64;
    let auto = revspend_core::features::group_code("AUTO PECAS") as f64;
    assert!(codes.iter().any(|c| c == Some(servico)));
    assert!(codes.iter().any(|c| c == Some(auto)));
}

#[test]
fn a_header_that_breaks_the_contract_names_file_and_column() {
    let p = Project::new();
    let mut f = quirky_file();
    // The amount header without its spaces.
    let at = f.windows(7).position(|w| w == b"; valor").expect("valor header") + 1;
    f.splice(at..at + 7, b"valor".iter().copied());
    p.write_raw("broken.csv", &f);
    let out = p.build_features();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("broken.csv") && err.contains("\" valor \""), "{err}");
}

#[test]
fn no_matching_files_is_an_error_naming_the_glob() {
    let p = Project::new();
    let out = p.build_features();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("raw_glob"), "{}", stderr(&out));
}

#[test]
fn customers_never_straddle_splits_and_rows_keep_their_order() {
    let p = Project::new();
    let mut f = HEADER.to_vec();
    // 60 customers, 5 purchases each, every other customer sometimes broke.
    for c in 0..60u64 {
        for d in 1..=5u32 {
            let disp = if c % 2 == 0 && d % 2 == 0 { 100.0 } else { 2500.0 };
            f.extend_from_slice(
                format!(
                    "{};201901;RECIFE;PE;40;F;3000.0;{disp};{d:02}.03.2020; 50,00 ;VESTUARIO;RECIFE;BR\n",
                    1000 + c
                )
                .as_bytes(),
            );
        }
    }
    p.write_raw("a.csv", &f);
    let out = p.build_features();
    assert!(out.status.success(), "{}", stderr(&out));
    let master = p.master();
    let customers = master.column("customer").expect("customer").str().expect("str");
    let splits = master.column("split").expect("split").str().expect("str");
    let mut split_of = std::collections::HashMap::new();
    for (c, s) in customers.iter().zip(splits.iter()) {
        let previous = split_of.insert(c.expect("customer"), s.expect("split"));
        assert!(
            previous.is_none_or(|p| Some(p) == s),
            "customer {c:?} is in two splits"
        );
    }
    assert_eq!(split_of.len(), 60);
    let report = p.report();
    let mut total = 0;
    for split in ["train", "test", "holdout", "calibration"] {
        let s = &report["splits"][split];
        assert!(s["customers"].as_u64().expect("count") > 0, "{split} is empty");
        // Stratified: every split gets customers with revenge purchases.
        assert!(
            s["positives"].as_u64().expect("count") > 0,
            "{split} has no positives"
        );
        total += s["rows"].as_u64().expect("rows");
    }
    assert_eq!(total, 300);
}

#[test]
fn an_error_expectation_fails_the_stage_after_every_expectation_ran() {
    let p = Project::new();
    p.write_raw("MiBolsillo.csv", &quirky_file());
    let suite = p.path("suite.yaml");
    std::fs::write(
        &suite,
        "expectations:\n\
         \x20 - expect: row_count_between\n    min: 1000\n\
         \x20 - expect: in_set\n    column: sexo\n    values: [F]\n    severity: warn\n\
         \x20 - expect: between\n    column: idade\n    min: 30\n",
    )
    .expect("suite");
    let out = p.build_features_with_suite(&suite);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("row_count_between") && err.contains("between(idade"),
        "{err}"
    );
    let report = p.json_at(&p.out().quality_report);
    let results = report["results"].as_array().expect("results");
    assert_eq!(results.len(), 3, "every expectation ran");
    assert_eq!(results[1]["success"], false);
    // idade 23 on lines 10 and 11 is below 30.
    assert_eq!(results[2]["unexpected_count"], 1);
    assert_eq!(results[2]["examples"][0]["line"], 11);
    // The stage hands the suite file names as a Categorical column.
    assert_eq!(results[2]["examples"][0]["file"], "MiBolsillo.csv");
}

/// A row of the contract with the given id, available limit, amount and
/// merchant group (UTF-8 text: callers encode it as the test needs).
fn row(id: &str, disp: &str, valor: &str, group: &str) -> String {
    format!("{id};201405;SÃO PAULO;SP;34;F;4700.0;{disp};02.07.2020;{valor};{group};SÃO PAULO;BR")
}

fn header_text() -> String {
    String::from_utf8(HEADER.to_vec()).expect("ascii header")
}

/// Issue 12, item 3: a file saved as UTF-8 is decoded as UTF-8, so
/// `SERVIÇO` stays the vital SERVICO and its purchases made on a nearly
/// used-up limit are not revenge spending; the encoding is recorded.
#[test]
fn a_utf8_file_keeps_its_vital_groups_and_records_its_encoding() {
    let p = Project::new();
    let mut text = header_text();
    for (i, day) in (1..=6).enumerate() {
        // 2 % available: revenge spending unless the group is vital.
        text.push_str(
            &row(&format!("3546697206{i}"), "94.0", " 52,00 ", "SERVIÇO")
                .replace("02.07", &format!("{day:02}.07")),
        );
        text.push_str("\r\n");
    }
    p.write_raw("utf8.csv", text.as_bytes());
    let out = p.build_features();
    assert!(out.status.success(), "{}", stderr(&out));
    let master = p.master();
    let target = master
        .column("is_revenge_spending")
        .expect("target")
        .bool()
        .expect("bool");
    assert_eq!(target.sum(), Some(0), "SERVIÇO is vital");
    let codes = master
        .column("group_code")
        .expect("group_code")
        .f64()
        .expect("f64");
    let servico = revspend_core::features::group_code("SERVICO") as f64;
    assert!(codes.iter().all(|c| c == Some(servico)));
    let report = p.report();
    assert_eq!(report["files"][0]["format"]["encoding"], "utf-8", "{report}");
    assert_eq!(report["rows_out"], 6);
}

/// Issue 12, item 3: a merchant group the contract does not know is a
/// quarantine reason naming the value, not a silent new category.
#[test]
fn an_unknown_merchant_group_is_quarantined_naming_it() {
    let p = Project::new();
    let mut f = quirky_file();
    f.extend_from_slice(&revspend_core::contract::encode_cp1252(&row(
        "81234567890123",
        "400.0",
        " 5,00 ",
        "PADARIA NOVA",
    )));
    f.extend_from_slice(b"\r\n");
    p.write_raw("MiBolsillo.csv", &f);
    let out = p.build_features();
    assert!(out.status.success(), "{}", stderr(&out));
    let report = p.report();
    assert_eq!(report["rows_out"], 6);
    assert_eq!(
        report["quarantine_reasons"]["grupo_estabelecimento"], 1,
        "{report}"
    );
    let q = read_quarantine(&p.out().quarantine).expect("quarantine");
    let unknown = q.iter().find(|r| r.line == 14).expect("line 14 quarantined");
    assert_eq!(unknown.field, "grupo_estabelecimento");
    assert!(unknown.reason.contains("PADARIA NOVA"), "{}", unknown.reason);
}

/// Issue 12, item 4: absurd amounts and limits quarantine their row (the
/// reason names the field, the value and the range); the stage goes on and
/// no such value reaches the splits.
#[test]
fn absurd_amounts_and_limits_are_quarantined_not_trained_on() {
    let p = Project::new();
    let mut f = quirky_file();
    let absurd = [
        row("81234567890123", "400.0", " -1.234,56 ", "VAREJO"),
        row("81234567890123", "400.0", " 100.000.000.000,00 ", "VAREJO"),
        row(
            "81234567890123",
            "400.0",
            " 123000000000000000000000,00 ",
            "VAREJO",
        ),
        row("81234567890123", "400.0", " 5,00 ", "VAREJO").replace("4700.0", "100000000000.0"),
        row("81234567890123", "9000000.0", " 5,00 ", "VAREJO"),
        row("81234567890123", "400.0", " 5,00 ", "VAREJO").replace(";34;", ";7;"),
    ];
    for r in &absurd {
        f.extend_from_slice(&revspend_core::contract::encode_cp1252(r));
        f.extend_from_slice(b"\r\n");
    }
    p.write_raw("MiBolsillo.csv", &f);
    let out = p.build_features();
    assert!(out.status.success(), "{}", stderr(&out));
    let report = p.report();
    assert_eq!(report["rows_in"], 18);
    assert_eq!(report["rows_out"], 6);
    assert_eq!(report["rows_quarantined"], 12);
    let ranged = &report["quarantine_out_of_range"];
    assert_eq!(ranged["valor"], 3, "{report}");
    assert_eq!(ranged["limite_total"], 1, "{report}");
    assert_eq!(ranged["limite_disp"], 1, "{report}");
    assert_eq!(ranged["idade"], 1, "{report}");
    let q = read_quarantine(&p.out().quarantine).expect("quarantine");
    let line15 = q.iter().find(|r| r.line == 15).expect("line 15");
    assert_eq!(line15.field, "valor");
    assert!(
        line15.reason.contains("100.000.000.000,00") && line15.reason.contains("[0, 1000000]"),
        "{}",
        line15.reason
    );
    let master = p.master();
    let valor = master.column("valor").expect("valor").f64().expect("f64");
    assert!(valor.iter().flatten().all(|v| (0.0..=1e6).contains(&v)));
}

/// Issue 12, item 7: a last line without its newline is checked field by
/// field like any other: `BR` cut to `B`, or cut right after the last
/// separator, is quarantined; a complete last line without newline is kept.
#[test]
fn a_last_line_cut_short_without_newline_is_quarantined() {
    let p = Project::new();
    let good = row("35466972063", "612.0", " 52,00 ", "VAREJO");
    for (name, last) in [
        (
            "cut-in-country.csv",
            good.strip_suffix('R').expect("BR").to_owned(),
        ),
        (
            "cut-after-separator.csv",
            good.strip_suffix("BR").expect("BR").to_owned(),
        ),
        ("complete.csv", good.clone()),
    ] {
        let text = format!("{}{good}\r\n{last}", header_text());
        p.write_raw(name, &revspend_core::contract::encode_cp1252(&text));
    }
    let out = p.build_features();
    assert!(out.status.success(), "{}", stderr(&out));
    let report = p.report();
    assert_eq!(report["rows_in"], 6);
    assert_eq!(report["rows_out"], 4, "{report}");
    assert_eq!(
        report["quarantine_reasons"]["pais_estabelecimento"], 2,
        "{report}"
    );
    let q = read_quarantine(&p.out().quarantine).expect("quarantine");
    let files: Vec<(&str, u64)> = q
        .iter()
        .map(|r| (r.file.rsplit('/').next().unwrap_or(""), r.line))
        .collect();
    assert_eq!(files, [("cut-after-separator.csv", 3), ("cut-in-country.csv", 3)]);
}
