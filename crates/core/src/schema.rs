//! Every table's columns, named once: the staged layer, the feature layer,
//! the master table (the split files) and the quarantine CSV, with a light
//! column type each. Writers build their tables from these lists and
//! readers check against them; the table crates map [`ColumnType`] to their
//! own data types (core knows nothing of dataframes).

use crate::contract::TextField;
use crate::features::Feature;

/// The type of a column, as far as the tables need to agree on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    Boolean,
    UInt64,
    Int32,
    Float64,
    /// A calendar date (days since 1970-01-01 in parquet).
    Date,
    /// UTF-8 text (a writer may store it dictionary-encoded).
    Text,
}

/// One column of a table: its name and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ColumnDef {
    pub name: &'static str,
    pub ty: ColumnType,
}

const fn col(name: &'static str, ty: ColumnType) -> ColumnDef {
    ColumnDef { name, ty }
}

/// The customer pseudonym (the group id of the splits).
pub const CUSTOMER: &str = "customer";
/// The label: revenge spending under the target rule.
pub const TARGET: &str = "is_revenge_spending";
/// The split a master-table row belongs to (one of [`SPLITS`]).
pub const SPLIT: &str = "split";

/// Staged lineage: the raw file name of each row.
pub const FILE: &str = "file";
/// Staged lineage: the line number of each row in its file.
pub const LINE: &str = "line";
/// Staged: the purchase date (the raw `data` column).
pub const DATA: &str = "data";
/// Staged: the amount (the raw ` valor ` column, trimmed).
pub const VALOR: &str = "valor";
pub const SAFRA_ABERTURA: &str = "safra_abertura";
pub const IDADE: &str = "idade";
pub const SEXO: &str = "sexo";
pub const LIMITE_TOTAL: &str = "limite_total";
pub const LIMITE_DISP: &str = "limite_disp";

/// Feature-layer lineage: the purchase date.
pub const DATE: &str = "date";
/// Feature-layer lineage: the raw file the row was staged from.
pub const SOURCE_FILE: &str = "source_file";
/// Feature-layer lineage: the row's line in that file.
pub const SOURCE_LINE: &str = "source_line";

/// The split names, in the order their fractions are laid out (and the
/// split files are written).
pub const SPLITS: [&str; 4] = ["train", "test", "holdout", "calibration"];

/// The staged layer: the raw columns, typed and normalised, with lineage
/// and the customer pseudonym in place of the raw id.
pub const STAGED: [ColumnDef; 15] = [
    col(FILE, ColumnType::Text),
    col(LINE, ColumnType::UInt64),
    col(CUSTOMER, ColumnType::Text),
    col(SAFRA_ABERTURA, ColumnType::Int32),
    col(TextField::Cidade.column(), ColumnType::Text),
    col(TextField::Estado.column(), ColumnType::Text),
    col(IDADE, ColumnType::Int32),
    col(SEXO, ColumnType::Text),
    col(LIMITE_TOTAL, ColumnType::Float64),
    col(LIMITE_DISP, ColumnType::Float64),
    col(DATA, ColumnType::Date),
    col(VALOR, ColumnType::Float64),
    col(TextField::Grupo.column(), ColumnType::Text),
    col(TextField::CidadeEstabelecimento.column(), ColumnType::Text),
    col(TextField::PaisEstabelecimento.column(), ColumnType::Text),
];

/// The lineage columns that open the feature layer and the master table.
pub const LINEAGE: [ColumnDef; 4] = [
    col(CUSTOMER, ColumnType::Text),
    col(DATE, ColumnType::Date),
    col(SOURCE_FILE, ColumnType::Text),
    col(SOURCE_LINE, ColumnType::UInt64),
];

/// The feature layer: lineage, every candidate feature (in
/// [`Feature::ALL`] order), the target.
pub fn feature_layer() -> Vec<ColumnDef> {
    let mut columns = LINEAGE.to_vec();
    columns.extend(Feature::ALL.iter().map(|f| col(f.name(), ColumnType::Float64)));
    columns.push(col(TARGET, ColumnType::Boolean));
    columns
}

/// The master table (each split file): the feature layer with the split
/// after the lineage columns.
pub fn master() -> Vec<ColumnDef> {
    let mut columns = feature_layer();
    columns.insert(LINEAGE.len(), col(SPLIT, ColumnType::Text));
    columns
}

/// The quarantine CSV's header: where a rejected raw row came from, the
/// offending field, why, and the row as decoded.
pub const QUARANTINE: [&str; 5] = ["file", "line", "field", "reason", "raw"];

/// The position of `name` in `columns`.
pub fn position(columns: &[ColumnDef], name: &str) -> Option<usize> {
    columns.iter().position(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::contract::COLUMNS;

    #[test]
    fn staged_columns_are_the_contract_columns_with_lineage_and_pseudonym() {
        let staged: BTreeSet<&str> = STAGED.iter().map(|c| c.name).collect();
        assert_eq!(staged.len(), STAGED.len(), "a staged column is named twice");
        let raw: BTreeSet<String> = COLUMNS.iter().map(|c| c.trim().to_owned()).collect();
        for name in &raw {
            if name != "id" {
                assert!(staged.contains(name.as_str()), "raw column {name} not staged");
            }
        }
        assert!(staged.contains(CUSTOMER) && staged.contains(FILE) && staged.contains(LINE));
    }

    #[test]
    fn the_master_table_is_the_feature_layer_with_the_split_after_the_lineage() {
        let layer = feature_layer();
        let master = master();
        assert_eq!(master.len(), layer.len() + 1);
        assert_eq!(position(&master, SPLIT), Some(LINEAGE.len()));
        assert_eq!(&master[..LINEAGE.len()], &LINEAGE);
        assert_eq!(&master[LINEAGE.len() + 1..], &layer[LINEAGE.len()..]);
        assert_eq!(layer.last().map(|c| c.name), Some(TARGET));
        let names: BTreeSet<&str> = master.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), master.len(), "a master column is named twice");
    }
}
