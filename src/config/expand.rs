//! `{$NAME}` and `{$NAME:default}` in a value of proxy.conf (or of a file
//! it includes): the value of the environment variable NAME, as Caddy
//! writes it, for what a container's settings make of the environment
//! (`targets = {$APP_HOST}:8080`), as nginx's image does with envsubst
//! and HAProxy with `"${NAME}"`.
//!
//! `${NAME}` could not be this: header values, `return` texts, rewrite
//! replacements and log templates take nginx's `$name` and `${name}` for
//! the request's variables. `{$` had no meaning in any value: a regular
//! expression cannot start a repetition with `$`, and a variable in
//! braces is `{${host}}` or, with a dollar written, `{$$`, neither of
//! which starts a reference. So only `{$` followed by a letter or `_`
//! does; the text `{$NAME` itself, where one needs it (a secret), comes
//! from a variable: an expanded value is not expanded again.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

const OPEN: &str = "{$";

/// The variables `{$NAME}` reads: those given to the loader (the
/// process's, or a test's own), never the process's read here.
#[derive(Clone, Default)]
pub(super) struct Environment(BTreeMap<String, String>);

impl fmt::Debug for Environment {
    // Their values may be secrets: a loader printed shows none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Environment({} variables)", self.0.len())
    }
}

impl Environment {
    pub(super) fn set(&mut self, name: &str, value: &str) {
        self.0.insert(name.to_string(), value.to_string());
    }

    /// What `reference` stands for.
    fn value_of<'a>(&'a self, reference: &Reference<'a>) -> Result<&'a str, ExpandError> {
        let name = reference.name;
        match (self.0.get(name), reference.default) {
            // A line break would end the value where the file's line does
            // not, and what follows it would be read as more of the line.
            (Some(value), _) if value.contains(['\n', '\r']) => {
                Err(ExpandError::LineBreak(name.to_string()))
            }
            (Some(value), _) => Ok(value),
            (None, Some(default)) => Ok(default),
            (None, None) => Err(ExpandError::Unset(name.to_string())),
        }
    }
}

/// A `{$...}` that cannot be expanded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum ExpandError {
    #[error("environment variable {0} is not set{hint}", hint = braced(.0))]
    Unset(String),
    #[error(
        "`{{${0}` has no `}}` to end it: `{{${0}}}`, or `{{${0}:default}}`{hint}",
        hint = braced(.0)
    )]
    Unterminated(String),
    #[error(
        "`{{${0}{1}`: an environment variable's name is letters, digits and `_`, \
         followed by `}}` or by `:` and a default{hint}",
        hint = braced(.0)
    )]
    BadName(String, char),
    #[error("`{{${0}:...}}`: a default is plain text, with no `{{$` in it")]
    NestedDefault(String),
    #[error("environment variable {0} holds a line break: a value is one line")]
    LineBreak(String),
}

/// For a name that is one of the request's variables in nginx's lower
/// case: how to write that variable in braces, which `{$name}` is no
/// longer.
fn braced(name: &str) -> String {
    let request_variable =
        !name.contains(|c: char| c.is_ascii_uppercase()) && crate::variables::lookup(name).is_ok();
    match request_variable {
        true => format!(" (the request's `${name}` in braces is `{{${{{name}}}}}`)"),
        false => String::new(),
    }
}

/// `{$NAME}` or `{$NAME:default}`, read.
struct Reference<'a> {
    name: &'a str,
    default: Option<&'a str>,
}

/// `value` with each `{$NAME}` and `{$NAME:default}` replaced by what it
/// stands for in `env`, once: what a variable holds is not read again.
pub(super) fn expand<'v>(value: &'v str, env: &Environment) -> Result<Cow<'v, str>, ExpandError> {
    if !value.contains(OPEN) {
        return Ok(Cow::Borrowed(value));
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some((before, after)) = rest.split_once(OPEN) {
        out.push_str(before);
        // `{$$` (a dollar in a text that takes variables), `{$1` (a
        // rewrite's group in braces): not references.
        if !after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            out.push_str(OPEN);
            rest = after;
            continue;
        }
        let (reference, after) = reference(after)?;
        out.push_str(env.value_of(&reference)?);
        rest = after;
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// The reference `text` (what follows a `{$`) starts with, and the text
/// after it.
fn reference(text: &str) -> Result<(Reference<'_>, &str), ExpandError> {
    let end = (text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))).unwrap_or(text.len());
    let (name, after) = text.split_at(end);
    let mut chars = after.chars();
    match chars.next() {
        Some('}') => {
            let reference = Reference {
                name,
                default: None,
            };
            Ok((reference, chars.as_str()))
        }
        Some(':') => {
            let Some((default, after)) = chars.as_str().split_once('}') else {
                return Err(ExpandError::Unterminated(name.to_string()));
            };
            if default.contains(OPEN) {
                return Err(ExpandError::NestedDefault(name.to_string()));
            }
            let default = Some(default);
            Ok((Reference { name, default }, after))
        }
        Some(c) => Err(ExpandError::BadName(name.to_string(), c)),
        None => Err(ExpandError::Unterminated(name.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigError, InMemory, Loader};

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        let vars = vars.iter();
        vars.map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    /// `proxy.conf` holding `text`, read with the variables `vars`.
    fn load(text: &str, vars: &[(&str, &str)]) -> Result<Loader, ConfigError> {
        let mut l = Loader::new();
        l.variables(env(vars));
        l.file("proxy.conf", text)?;
        Ok(l)
    }

    fn error(text: &str, vars: &[(&str, &str)]) -> String {
        match load(text, vars) {
            Ok(_) => panic!("taken: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_targets_value_is_built_from_the_environment() {
        let l = load(
            "port = 9000\ntargets = {$APP_HOST}:8080, {$APP_HOST_2}:{$PORT_2}\n",
            &[
                ("APP_HOST", "127.0.0.1"),
                ("APP_HOST_2", "[::1]"),
                ("PORT_2", "9"),
                ("API_TOKEN", "s3cret"),
            ],
        )
        .unwrap();
        assert_eq!(l.value_of("targets"), Some("127.0.0.1:8080, [::1]:9"));
        let c = l.build().unwrap();
        let addrs: Vec<_> = c.targets.iter().map(|t| t.addr.tcp()).collect();
        assert_eq!(
            addrs,
            [Some(([127, 0, 0, 1], 8080).into()), "[::1]:9".parse().ok()]
        );
        // The line it was written on is where it came from.
        assert_eq!(l.settings["targets"].origin.to_string(), "proxy.conf:2");
        // The variables kept for the file may be secrets: a loader
        // printed shows none.
        assert!(!format!("{l:?}").contains("s3cret"));
    }

    #[test]
    fn a_default_stands_for_a_variable_not_set_and_may_be_empty() {
        let text = "targets = {$APP_HOST:127.0.0.1}:1\nrequest_header.X-Env = {$DEPLOY_ENV:}\n";
        let l = load(text, &[]).unwrap();
        assert_eq!(l.value_of("targets"), Some("127.0.0.1:1"));
        assert_eq!(l.field_keys[0].setting.value, "");
        // A variable set, even to nothing, is its value, not the default.
        let l = load(text, &[("APP_HOST", "127.0.0.2"), ("DEPLOY_ENV", "")]).unwrap();
        assert_eq!(l.value_of("targets"), Some("127.0.0.2:1"));
        let l = load("targets = {$T:127.0.0.1:9}\n", &[("T", "")]);
        assert_eq!(l.unwrap().value_of("targets"), Some(""));
    }

    #[test]
    fn a_variable_not_set_is_an_error_at_its_line() {
        assert_eq!(
            error(
                "port = 81\ntargets = {$APP_HOST}:8080\n",
                &[("APP_HOS", "x")]
            ),
            "proxy.conf:2: environment variable APP_HOST is not set"
        );
        // A log template's `{$host}` meant the request's host in braces.
        assert_eq!(
            error("log_format = {$host} $status\n", &[]),
            "proxy.conf:1: environment variable host is not set \
             (the request's `$host` in braces is `{${host}}`)"
        );
    }

    #[test]
    fn a_reference_without_its_brace_or_with_a_bad_name_is_an_error() {
        assert_eq!(
            error("targets = {$APP_HOST:8080\n", &[("APP_HOST", "x")]),
            "proxy.conf:1: `{$APP_HOST` has no `}` to end it: `{$APP_HOST}`, or \
             `{$APP_HOST:default}`"
        );
        assert!(error("targets = {$APP_HOST\n", &[("APP_HOST", "x")])
            .starts_with("proxy.conf:1: `{$APP_HOST` has no `}`"));
        assert!(error("targets = {$APP-HOST}\n", &[("APP", "x")])
            .starts_with("proxy.conf:1: `{$APP-`: an environment variable's name is"));
        assert!(error("targets = {$A:{$B}}\n", &[("B", "x")])
            .starts_with("proxy.conf:1: `{$A:...}`: a default is plain text"));
    }

    #[test]
    fn a_value_with_a_line_break_is_refused_without_showing_it() {
        for value in ["127.0.0.1:1\nport = 1", "127.0.0.1:1\r"] {
            let e = error("targets = {$T}\n", &[("T", value)]);
            assert_eq!(
                e,
                "proxy.conf:1: environment variable T holds a line break: a value is one line"
            );
        }
    }

    #[test]
    fn a_value_from_the_environment_is_not_expanded_again() {
        let vars = [("A", "{$B}"), ("B", "127.0.0.1:1")];
        let l = load("targets = 127.0.0.1:2\nsecure_link_secret = {$A}\n", &vars).unwrap();
        assert_eq!(l.value_of("secure_link_secret"), Some("{$B}"));
        let e = load("targets = {$A}\n", &vars)
            .unwrap()
            .build()
            .unwrap_err();
        assert_eq!(e.place, "proxy.conf:1");
        assert!(e.message.contains("{$B}"), "{e}");
    }

    #[test]
    fn keys_and_comments_are_not_expanded() {
        let vars = [("K", "port"), ("T", "127.0.0.1:1")];
        assert_eq!(
            error("targets = {$T}\n{$K} = 80\n", &vars),
            "proxy.conf:2: unknown key `{$K}`"
        );
        // A reference in a comment, to a variable not set, is no error.
        let l = load("targets = {$T} # {$NOT_SET}\n# {$NOT_SET}\n", &vars).unwrap();
        assert_eq!(l.value_of("targets"), Some("127.0.0.1:1"));
    }

    #[test]
    fn a_dollar_or_a_digit_after_the_brace_is_no_reference() {
        let mut e = Environment::default();
        e.set("A", "a");
        for text in ["{$$host}", "x{$1}", "{${host}}", "{$", "a{$ b}", "${A}"] {
            assert_eq!(
                expand(&format!("{text}{{$A}}"), &e).unwrap(),
                format!("{text}a")
            );
        }
        // A request's variable in braces, as before.
        let l = load("targets = 127.0.0.1:1\nlog_format = {${host}} {$$}\n", &[]).unwrap();
        assert_eq!(l.value_of("log_format"), Some("{${host}} {$$}"));
        assert!(l.build().is_ok());
    }

    #[test]
    fn variables_set_no_key_and_the_environment_and_flags_come_over_the_file() {
        let mut l = Loader::new();
        let vars = env(&[("INVERSO_PORT", "2000"), ("P", "1000")]);
        l.variables(vars.clone());
        l.file(
            "proxy.conf",
            "targets = 127.0.0.1:1\nport = {$P}\nttl = 5s\n",
        )
        .unwrap();
        assert_eq!(l.value_of("port"), Some("1000"));
        l.env(vars);
        l.flag("ttl", "9s", "--set").unwrap();
        let c = l.build().unwrap();
        assert_eq!(c.port, 2000);
        assert_eq!(c.ttl, std::time::Duration::from_secs(9));
    }

    #[test]
    fn an_included_file_reads_the_environment_and_its_errors_name_its_line() {
        let files = [
            ("conf.d/a.conf", "\npool.api = {$API_HOST}:9002\n"),
            ("conf.d/b.conf", "# b\n\nroute./api = {$API_POOL}\n"),
        ];
        let load = |vars: &[(&str, &str)]| {
            let files = files.iter().map(|(p, t)| (p.to_string(), t.to_string()));
            let mut l = Loader::new();
            l.variables(env(vars));
            l.file_including(
                "proxy.conf",
                "targets = 127.0.0.1:1\ninclude = {$CONF_DIR}/*.conf\n",
                &mut InMemory(files.collect()),
            )?;
            Ok::<_, ConfigError>(l)
        };
        let vars = [
            ("API_HOST", "127.0.0.1"),
            ("API_POOL", "api"),
            ("CONF_DIR", "conf.d"),
        ];
        let l = load(&vars).unwrap();
        assert_eq!(
            l.files_read(),
            ["proxy.conf", "conf.d/a.conf", "conf.d/b.conf"]
        );
        let c = l.build().unwrap();
        assert_eq!(c.pools.len(), 1);
        assert_eq!(c.routes.iter().count(), 1);
        let e = load(&vars[..2]).err().unwrap();
        assert_eq!(
            e.to_string(),
            "proxy.conf:2: environment variable CONF_DIR is not set"
        );
        let e = load(&[vars[0], vars[2]]).err().unwrap();
        assert_eq!(
            e.to_string(),
            "conf.d/b.conf:3: environment variable API_POOL is not set"
        );
    }

    #[test]
    fn what_the_variables_hold_counts_toward_a_configuration_s_bound() {
        let bound = crate::config::load::MAX_CONFIG_BYTES as usize;
        let big = "x".repeat(bound / 2);
        let text = "targets = 127.0.0.1:1\nlog_format = {$BIG}\npath_to_log = {$BIG}\n";
        let e = error(text, &[("BIG", &big)]);
        assert!(
            e.starts_with("proxy.conf:3: with environment variables"),
            "{e}"
        );
    }

    #[test]
    fn a_rewrite_s_pattern_takes_a_reference_which_no_regular_expression_could_hold() {
        // Why `{$` was free in a `path_reg` or a rewrite's pattern.
        for pattern in ["{$A}", "^/a{$A}$", "x{$HOST:y}"] {
            assert!(regex::Regex::new(pattern).is_err(), "{pattern}");
        }
        let text = "targets = 127.0.0.1:1\nrewrite.old = ^/{$OLD}/(.*)$ /new/$1\n";
        let l = load(text, &[("OLD", "legacy")]).unwrap();
        assert_eq!(l.build().unwrap().rewrites.iter().count(), 1);
    }
}
