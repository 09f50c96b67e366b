//! Lists of address blocks (`real_ip_from`, `allow_from`, `deny_from`,
//! `auth_basic_except_from`), written in the value or read from files
//! named `file:<path>`, one block a line, as HAProxy's `src -f <file>`
//! reads them: the lists published as files (a CDN's addresses, a
//! country's blocks, a feed of networks to refuse) are used as they come.

use crate::realip::Cidr;
use std::path::Path;

/// The keys that hold lists of address blocks.
pub const ADDRESS_LISTS: [&str; 5] = [
    "real_ip_from",
    "allow_from",
    "deny_from",
    "auth_basic_except_from",
    "error_limit_except_from",
];

/// How many blocks the list `value` holds, its files' included.
pub fn address_blocks(value: &str) -> Result<usize, String> {
    parse_cidrs(value).map(|blocks| blocks.len())
}

/// `10.0.0.0/8, 2001:db8::/32, file:/etc/inverso/drop.txt`: the blocks
/// written, and those of each file, in order; empty: none.
pub(in crate::config) fn parse_cidrs(v: &str) -> Result<Vec<Cidr>, String> {
    if v.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut blocks = Vec::new();
    for item in v.split(',').map(str::trim) {
        match item.strip_prefix("file:") {
            Some(path) => read_list(Path::new(path.trim()), &mut blocks)?,
            None => blocks.push(Cidr::parse(item)?),
        }
    }
    Ok(blocks)
}

/// Reads the blocks of the file at `path` into `blocks`: one a line,
/// blank lines and comments (from `#` or `;`, as Spamhaus's DROP list
/// writes them, to the end of the line) left out.
fn read_list(path: &Path, blocks: &mut Vec<Cidr>) -> Result<(), String> {
    let shown = path.display();
    if path.as_os_str().is_empty() {
        return Err("`file:` needs a path, e.g. `file:/etc/inverso/blocklist.txt`".into());
    }
    // As a configuration file is read: 16 MiB at most, a million blocks.
    let text = crate::config::load::read_bounded(path, "a list of addresses")
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    for (index, line) in text.lines().enumerate() {
        let block = line.split(['#', ';']).next().unwrap_or_default().trim();
        if block.is_empty() {
            continue;
        }
        let block = Cidr::parse(block).map_err(|e| format!("{shown}:{}: {e}", index + 1))?;
        blocks.push(block);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.txt");
        std::fs::write(&path, text).unwrap();
        let path = path.display().to_string();
        (dir, path)
    }

    fn shown(blocks: &[Cidr]) -> Vec<String> {
        blocks.iter().map(|b| b.to_string()).collect()
    }

    #[test]
    fn a_file_adds_its_blocks_where_it_is_named() {
        let (_dir, path) = listed(
            "; Spamhaus DROP List\n1.10.16.0/20 ; SBL256894\n\n# a comment\n  2001:db8::/32  \n192.0.2.7\n",
        );
        let blocks = parse_cidrs(&format!("10.0.0.0/8, file:{path}, 198.51.100.0/24")).unwrap();
        assert_eq!(
            shown(&blocks),
            [
                "10.0.0.0/8",
                "1.10.16.0/20",
                "2001:db8::/32",
                "192.0.2.7/32",
                "198.51.100.0/24"
            ]
        );
        // A file of comments alone is an empty list, as an empty value.
        let (_dir, path) = listed("# nothing yet\n");
        assert!(parse_cidrs(&format!("file:{path}")).unwrap().is_empty());
    }

    #[test]
    fn a_bad_line_is_named_by_its_file_and_line() {
        let (_dir, path) = listed("10.0.0.0/8\n\nexample.com\n");
        let e = parse_cidrs(&format!("file:{path}")).unwrap_err();
        assert_eq!(
            e,
            format!("{path}:3: `example.com` is not an address or address/prefix")
        );
        let (_dir, path) = listed("10.1.2.3/8\n");
        let e = parse_cidrs(&format!("file:{path}")).unwrap_err();
        assert!(
            e.starts_with(&format!("{path}:1: `10.1.2.3/8` has bits set")),
            "{e}"
        );
    }

    #[test]
    fn a_missing_file_a_directory_and_no_path_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.txt").display().to_string();
        let e = parse_cidrs(&format!("file:{missing}")).unwrap_err();
        assert!(e.starts_with(&format!("cannot read {missing}: ")), "{e}");
        let e = parse_cidrs(&format!("file:{}", dir.path().display())).unwrap_err();
        assert!(e.starts_with("cannot read "), "{e}");
        assert!(parse_cidrs("file:").unwrap_err().contains("needs a path"));
    }

    #[test]
    fn a_file_too_large_to_be_a_list_is_refused() {
        let (_dir, path) = listed(&"# padding line\n".repeat(1_200_000));
        let e = parse_cidrs(&format!("file:{path}")).unwrap_err();
        assert!(e.ends_with("not a list of addresses"), "{e}");
        // The bound exactly: read whole and taken; a byte more, refused
        // (not read cut short).
        let at_most = format!(
            "192.0.2.7\n#{}\n",
            "-".repeat(crate::config::load::MAX_CONFIG_BYTES as usize - 12)
        );
        let (_dir, path) = listed(&at_most);
        assert_eq!(address_blocks(&format!("file:{path}")), Ok(1));
        let (_dir, path) = listed(&format!("{at_most} "));
        let e = parse_cidrs(&format!("file:{path}")).unwrap_err();
        assert!(e.ends_with("not a list of addresses"), "{e}");
    }

    #[test]
    fn the_blocks_are_counted_with_those_of_their_files() {
        let (_dir, path) = listed("192.0.2.0/24\n2001:db8::/32\n");
        assert_eq!(address_blocks(&format!("10.0.0.0/8, file:{path}")), Ok(3));
        assert_eq!(address_blocks(""), Ok(0));
    }
}
