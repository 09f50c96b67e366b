//! The `fastcgi_*` keys: how a pool's FastCGI targets are asked.

/// `fastcgi_root`: an absolute path, kept without its last `/` (the
/// script's path brings one); empty for none.
pub(in crate::config) fn parse_fastcgi_root(v: &str) -> Result<String, String> {
    if v.is_empty() {
        return Ok(String::new());
    }
    if !v.starts_with('/') {
        return Err(format!(
            "`{}` is not an absolute path: the FastCGI server is told where its scripts are, \
             and knows nothing of this proxy's working directory",
            v.escape_debug()
        ));
    }
    if v.bytes().any(|b| b.is_ascii_control()) {
        return Err("a path with a control character".into());
    }
    Ok(v.trim_end_matches('/').to_owned())
}

/// `fastcgi_index`: a file name, no `/`; empty for none.
pub(in crate::config) fn parse_fastcgi_index(v: &str) -> Result<Option<String>, String> {
    if v.contains('/') || v == "." || v == ".." || v.bytes().any(|b| b.is_ascii_control()) {
        return Err(format!(
            "`{}` is not a file name (index.php)",
            v.escape_debug()
        ));
    }
    Ok((!v.is_empty()).then(|| v.to_owned()))
}

/// `fastcgi_script`: a path under the root, from its `/`; empty for
/// none.
pub(in crate::config) fn parse_fastcgi_script(v: &str) -> Result<Option<String>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    let dotted = v.split('/').any(|s| s == "." || s == "..");
    if !v.starts_with('/') || v.ends_with('/') || dotted || v.bytes().any(|b| b.is_ascii_control())
    {
        return Err(format!(
            "`{}` is not a script's path under fastcgi_root (/index.php)",
            v.escape_debug()
        ));
    }
    Ok(Some(v.to_owned()))
}

/// `fastcgi_split_path_info`: a regular expression with two groups
/// (`SCRIPT_NAME`, `PATH_INFO`); empty for none.
pub(in crate::config) fn parse_split_path_info(v: &str) -> Result<Option<regex::Regex>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    let re = regex::Regex::new(v).map_err(|e| format!("not a regular expression: {e}"))?;
    if re.captures_len() != 3 {
        return Err(format!(
            "has {} groups, not 2: the first is SCRIPT_NAME and the second PATH_INFO \
             (^(.+\\.php)(/.*)$)",
            re.captures_len() - 1
        ));
    }
    Ok(Some(re))
}

/// `fastcgi_params`: `NAME=value, ...`, names of letters, digits and
/// `_`, each once.
pub(in crate::config) fn parse_fastcgi_params(v: &str) -> Result<Vec<(String, String)>, String> {
    let mut params: Vec<(String, String)> = Vec::new();
    for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((name, value)) = item.split_once('=') else {
            return Err(format!(
                "`{}` is not NAME=value (APP_ENV=production)",
                item.escape_debug()
            ));
        };
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!(
                "`{}` is no variable name (letters, digits and _)",
                name.escape_debug()
            ));
        }
        if params.iter().any(|(n, _)| n == name) {
            return Err(format!("{name} given twice"));
        }
        let value = value.trim();
        if value.bytes().any(|b| b.is_ascii_control()) {
            return Err(format!("{name}: a value with a control character"));
        }
        params.push((name.to_owned(), value.to_owned()));
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_takes_what_nginx_would_and_says_what_is_wrong() {
        assert_eq!(
            parse_fastcgi_root("/var/www/html/").unwrap(),
            "/var/www/html"
        );
        assert_eq!(parse_fastcgi_root("").unwrap(), "");
        assert!(parse_fastcgi_root("www").unwrap_err().contains("absolute"));
        assert_eq!(
            parse_fastcgi_index("index.php").unwrap().as_deref(),
            Some("index.php")
        );
        assert_eq!(parse_fastcgi_index("").unwrap(), None);
        assert!(parse_fastcgi_index("a/index.php").is_err());
        assert_eq!(
            parse_fastcgi_script("/public/index.php")
                .unwrap()
                .as_deref(),
            Some("/public/index.php")
        );
        assert_eq!(parse_fastcgi_script("").unwrap(), None);
        for bad in ["index.php", "/app/", "/../index.php"] {
            assert!(
                parse_fastcgi_script(bad)
                    .unwrap_err()
                    .contains("not a script's path"),
                "{bad}"
            );
        }
        let re = parse_split_path_info(r"^(.+\.php)(/.*)$").unwrap().unwrap();
        assert!(re.is_match("/a.php/b"));
        assert!(parse_split_path_info(r"^(.+\.php)")
            .unwrap_err()
            .contains("1 groups"));
        assert!(parse_split_path_info("(")
            .unwrap_err()
            .contains("regular expression"));
        let params =
            parse_fastcgi_params("APP_ENV=production, PHP_VALUE=memory_limit=256M, X=").unwrap();
        assert_eq!(
            params,
            [
                ("APP_ENV".into(), "production".into()),
                ("PHP_VALUE".into(), "memory_limit=256M".into()),
                ("X".into(), String::new()),
            ]
        );
        assert!(parse_fastcgi_params("A=1, A=2")
            .unwrap_err()
            .contains("twice"));
        assert!(parse_fastcgi_params("A B=1")
            .unwrap_err()
            .contains("no variable name"));
        assert!(parse_fastcgi_params("novalue")
            .unwrap_err()
            .contains("NAME=value"));
    }
}
