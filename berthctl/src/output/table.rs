//! Column layout of Go's `text/tabwriter` as crictl configures it
//! (`tabwriter.NewWriter(out, 20, 1, 3, ' ', 0)`).

/// Smallest column width, padding included.
const MIN_WIDTH: usize = 20;
/// Spaces added after the widest cell of a column.
const PADDING: usize = 3;

/// A table whose rows are laid out on `render`.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// Every cell but a row's last is padded to its column's width: the
    /// widest cell plus 3, at least 20. The last cell is written as is
    /// (tabwriter only aligns tab-terminated cells). Widths count
    /// characters, as tabwriter counts runes.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = Vec::new();
        for row in &self.rows {
            let aligned = row.len().saturating_sub(1);
            for (i, cell) in row.iter().take(aligned).enumerate() {
                let w = (cell.chars().count() + PADDING).max(MIN_WIDTH);
                match widths.get_mut(i) {
                    Some(cur) => *cur = (*cur).max(w),
                    None => widths.push(w),
                }
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let last = row.len().saturating_sub(1);
            for (i, cell) in row.iter().enumerate() {
                out.push_str(cell);
                if i < last {
                    let width = widths.get(i).copied().unwrap_or(MIN_WIDTH);
                    let pad = width.saturating_sub(cell.chars().count());
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_at_least_20_wide_and_padded_by_3() {
        let mut t = Table::new();
        t.row(["A", "B", "LAST"]);
        t.row(["docker.io/library/busybox:latest", "x", "y"]);
        assert_eq!(
            t.render(),
            "A                                  B                   LAST\n\
             docker.io/library/busybox:latest   x                   y\n"
        );
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let mut t = Table::new();
        t.row(["ééééééééééééééééééé", "z"]);
        let line = t.render();
        let first = line.split('z').next().unwrap_or_default();
        assert_eq!(first.chars().count(), 22);
    }

    #[test]
    fn empty_table_renders_nothing() {
        assert_eq!(Table::new().render(), "");
    }
}
