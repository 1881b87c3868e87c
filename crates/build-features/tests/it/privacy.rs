//! Issue 12, item 9: no raw customer id at rest. Whatever goes wrong with a
//! row or a file, nothing the stage writes (data, reports) holds a raw id of
//! the input; the quarantine keeps the file and line to find the raw row.

use std::path::Path;

use revspend_core::pseudonym::Pseudonymiser;
use revspend_table::read_quarantine;

use crate::support::{Project, stderr};

const HEADER: &str = "id;safra_abertura;cidade;estado;idade;sexo;limite_total;limite_disp;data; valor ;grupo_estabelecimento;cidade_estabelecimento;pais_estabelecimento";

/// Customer ids of the fixture: each appears in the raw files only.
const IDS: [&str; 9] = [
    "35466972063",
    "81234567890123",
    "42424242424",
    "51515151515",
    "60606060606",
    "73737373737",
    "88888888123",
    "99119911991",
    "12312312312",
];

fn good(id: &str, day: u32) -> String {
    format!("{id};201405;RECIFE;PE;34;F;4700.0;612.0;{day:02}.07.2020; 52,00 ;VAREJO;RECIFE;BR")
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn no_raw_customer_id_is_stored_under_the_output_dirs() {
    let p = Project::new();
    let mut text = format!("{HEADER}\n");
    for (i, id) in IDS.iter().enumerate() {
        // Every other customer has room on the card: not revenge spending.
        let row = good(id, 1 + i as u32);
        text.push_str(&if i % 2 == 0 {
            row
        } else {
            row.replace("612.0", "3000.0")
        });
        text.push('\n');
    }
    let bad = [
        // A bad field of each kind, the id repeated elsewhere in the row.
        good(IDS[0], 10).replace(";F;", ";X;"),
        good(IDS[1], 11).replace("612.0", ""),
        // The id does not parse: stored as the pseudonym of its text.
        good(&format!("X{}", IDS[2]), 12),
        // Wrong field count, and a stray separator shifting the id.
        good(IDS[3], 13).replace(";BR", ""),
        format!(";{}", good(IDS[4], 14)),
        // The id where the amount should be (out of range), and in the group.
        good(IDS[5], 15).replace(" 52,00 ", IDS[5]),
        good(IDS[6], 16).replace("VAREJO", IDS[6]),
        good(IDS[7], 17).replace(";34;", ";7;"),
    ];
    for b in &bad {
        text.push_str(b);
        text.push('\n');
    }
    // The last line cut short, with no newline.
    text.push_str(good(IDS[8], 18).strip_suffix('R').expect("BR"));
    p.write_raw("day.csv", text.as_bytes());
    // A file without its header: its first line, quoted in the reason, is a row.
    p.write_raw(
        "headerless.csv",
        format!("{}\n{}\n", good(IDS[0], 20), good(IDS[3], 21)).as_bytes(),
    );

    let out = p.build_features();
    assert!(out.status.success(), "{}", stderr(&out));
    let report = p.report();
    assert_eq!(
        report["rows_quarantined"].as_u64(),
        Some(bad.len() as u64 + 1 + 1),
        "{report}"
    );

    let mut written = Vec::new();
    files_under(&p.path("out"), &mut written);
    assert!(written.len() > 10, "{written:?}");
    for path in &written {
        let bytes = std::fs::read(path).expect("read output");
        for id in IDS {
            assert!(
                !bytes.windows(id.len()).any(|w| w == id.as_bytes()),
                "{} holds the raw customer id {id}",
                path.display()
            );
        }
    }

    // The quarantine still says where each row is, and names the customer by
    // the pseudonym the staged rows use.
    let q = read_quarantine(&p.out().quarantine).expect("quarantine");
    let pseudo = Pseudonymiser::new(b"test-key");
    let sexo = q.iter().find(|r| r.field == "sexo").expect("bad sexo row");
    assert!(sexo.file.ends_with("day.csv") && sexo.line == 11, "{sexo:?}");
    assert!(sexo.raw.starts_with(&pseudo.pseudonym(IDS[0])), "{}", sexo.raw);
    let id = q.iter().find(|r| r.field == "id").expect("bad id row");
    assert!(
        id.raw.starts_with(&pseudo.pseudonym(&format!("X{}", IDS[2]))),
        "{}",
        id.raw
    );
}
