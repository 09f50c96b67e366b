//! The families of named rules, in the file only and tried in its order:
//! `rewrite.<name> = <pattern> <replacement> [<flag>] [host=<hosts>]`,
//! the rules that change a request's path, or answer it with a redirect,
//! before it is routed (see [`crate::rewrite`]), and `deny.<name> =
//! [<status>] if <condition>`, those that refuse it before that (see
//! [`crate::deny`]).

use super::pools::on_line;
use super::{ConfigError, Loader, Origin, Setting};
use crate::deny::{DenyRule, DenyRules, MAX_DENY_RULES};
use crate::rewrite::{check_name, Rewrites, Rule, MAX_REWRITES};

/// A key of a family of named rules (`rewrite.<name>`, `deny.<name>`),
/// as read.
#[derive(Clone, Debug)]
pub(super) struct RuleKey {
    name: String,
    setting: Setting,
}

/// The keys of one family of named rules, in the file's order (the order
/// its rules are tried in); each rule is read at [`Loader::build`], as a
/// route's is.
#[derive(Clone, Debug)]
pub(super) struct RuleKeys {
    family: &'static str,
    /// A key of the family as written, for messages.
    example: &'static str,
    max: usize,
    keys: Vec<RuleKey>,
}

impl RuleKeys {
    pub(super) fn rewrites() -> RuleKeys {
        RuleKeys::new("rewrite", crate::rewrite::EXAMPLE, MAX_REWRITES)
    }

    pub(super) fn denials() -> RuleKeys {
        let example = "deny.bots = if header_reg User-Agent (?i)(bot|scan)";
        RuleKeys::new("deny", example, MAX_DENY_RULES)
    }

    fn new(family: &'static str, example: &'static str, max: usize) -> RuleKeys {
        RuleKeys {
            family,
            example,
            max,
            keys: Vec::new(),
        }
    }

    /// Takes `<family>.<name> = value` from the file.
    pub(super) fn take(
        &mut self,
        name: &str,
        value: &str,
        origin: Origin,
    ) -> Result<(), ConfigError> {
        let family = self.family;
        let refused = |message: String| Err(ConfigError::at(&origin, message));
        if name.is_empty() {
            return refused(format!(
                "`{family}.` needs a name after the dot, e.g. `{}`",
                self.example
            ));
        }
        check_name(family, self.example, name).or_else(refused)?;
        if let Some(first) = self.keys.iter().find(|k| k.name == name) {
            let first = on_line(&first.setting, &origin);
            return refused(format!("duplicate key `{family}.{name}`{first}"));
        }
        if self.keys.len() >= self.max {
            return refused(format!(
                "`{family}.{name}`: more than {} {family} rules",
                self.max
            ));
        }
        self.keys.push(RuleKey {
            name: name.to_string(),
            setting: Setting {
                value: value.to_string(),
                origin,
            },
        });
        Ok(())
    }

    /// Every key with its value and origin, in the file's order.
    pub(super) fn settings(&self) -> impl Iterator<Item = (String, &Setting)> {
        (self.keys.iter()).map(|k| (format!("{}.{}", self.family, k.name), &k.setting))
    }

    /// Each rule `parse` reads of its key, refused at its line when it
    /// cannot be read.
    fn build<T>(
        &self,
        parse: impl Fn(&str, &str) -> Result<T, String>,
    ) -> Result<Vec<T>, ConfigError> {
        let family = self.family;
        (self.keys.iter())
            .map(|RuleKey { name, setting }| {
                parse(name, &setting.value)
                    .map_err(|m| ConfigError::at(&setting.origin, format!("{family}.{name}: {m}")))
            })
            .collect()
    }
}

impl Loader {
    /// Every `rewrite.<name>` key with its value and origin, in the
    /// file's order (the order its rules are tried in).
    pub fn rewrite_settings(&self) -> impl Iterator<Item = (String, &Setting)> {
        self.rewrite_keys.settings()
    }

    /// Every `deny.<name>` key with its value and origin, in the file's
    /// order (the order its rules are tried in).
    pub fn deny_settings(&self) -> impl Iterator<Item = (String, &Setting)> {
        self.deny_keys.settings()
    }

    /// The rewrite rules, each refused at its line when it cannot be read.
    pub(super) fn build_rewrites(&self) -> Result<Rewrites, ConfigError> {
        self.rewrite_keys.build(Rule::parse).map(Rewrites::new)
    }

    /// The deny rules, each refused at its line when it cannot be read
    /// (or reads a country while `geoip` says no database is set).
    pub(super) fn build_denials(&self, geoip: bool) -> Result<DenyRules, ConfigError> {
        let parse = |name: &str, value: &str| {
            let rule = DenyRule::parse(name, value)?;
            rule.condition().needs_geoip(geoip)?;
            Ok(rule)
        };
        self.deny_keys.build(parse).map(DenyRules::new)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{build_after_targets as build, refused_after_targets as refused};
    use super::*;

    #[test]
    fn rules_are_read_in_the_file_s_order_and_pools_have_none_of_their_own() {
        let c = build(
            "rewrite.z-last = ^/a$ /b\n\
             pool.api = 127.0.0.1:2\n\
             route./api/ = api\n\
             rewrite.a_first = ^/old/(.*)$ https://example.com/$1 permanent\n",
        )
        .unwrap();
        let rules: Vec<(&str, Option<u16>)> = c
            .rewrites
            .iter()
            .map(|r| (r.name(), r.redirect()))
            .collect();
        assert_eq!(rules, [("z-last", None), ("a_first", Some(301))]);
        assert!(c.pools[0].config.rewrites.is_empty());
    }

    #[test]
    fn a_rule_that_cannot_be_read_is_refused_at_its_line() {
        for (line, says) in [
            (
                "rewrite.r = (abc /b",
                "proxy.conf:3: rewrite.r: the pattern `(abc` does not compile: unclosed group",
            ),
            (
                "rewrite.r = ^/a /b moved",
                "proxy.conf:3: rewrite.r: unknown flag `moved`: a rule's flag is `redirect` \
                 (302), `permanent` (301), or `last` or `break`",
            ),
            (
                "rewrite.r = ^/(a)$ /$7",
                "proxy.conf:3: rewrite.r: the replacement `/$7` names `$7`, but the pattern \
                 has one group",
            ),
            (
                "rewrite.r = ^/a$ /price-in-$",
                "proxy.conf:3: rewrite.r: the replacement `/price-in-$` has a `$` that is no \
                 `$1` to `$9` or variable (`$host`, `$scheme`, `$request_uri`, `$args`, \
                 `$is_args`): `$$` writes a dollar",
            ),
            (
                "rewrite.r = ^/a$",
                "proxy.conf:3: rewrite.r: a rule is `<pattern> <replacement> [<flag>] [host=<hosts>]`",
            ),
            (
                "rewrite.a/b = ^/a$ /b",
                "proxy.conf:3: `rewrite.a/b`: a rule's name is 1 to 64 letters, digits, `-` or `_`",
            ),
            (
                "rewrite. = ^/a$ /b",
                "proxy.conf:3: `rewrite.` needs a name after the dot",
            ),
            (
                "rewrite.r = ^/a$ /b\nrewrite.r = ^/c$ /d",
                "proxy.conf:4: duplicate key `rewrite.r` (first set on line 3)",
            ),
            (
                "rewrites.r = ^/a$ /b",
                "proxy.conf:3: unknown key `rewrites.r` (did you mean `rewrite.r`?)",
            ),
            (
                "rewite.r = ^/a$ /b",
                "proxy.conf:3: unknown key `rewite.r` (did you mean `rewrite.r`?)",
            ),
            (
                "rewrite = ^/a$ /b",
                "proxy.conf:3: `rewrite` needs a name: `rewrite.<name> = <pattern> \
                 <replacement> [<flag>] [host=<hosts>]`, one key per rule",
            ),
            (
                "rewrites = ^/a$ /b",
                "proxy.conf:3: unknown key `rewrites` (did you mean `rewrite.<name>`",
            ),
            // The families the file alone holds are hinted at too.
            (
                "routes./api/ = default",
                "proxy.conf:3: unknown key `routes./api/` (did you mean `route./api/`?)",
            ),
        ] {
            // A first line that is fine, so that the line is told.
            let message = refused(&format!("rewrite.fine = ^/x$ /y\n{line}\n"));
            assert!(message.starts_with(says), "{line}: {message}");
        }
    }

    #[test]
    fn the_examples_of_proxy_conf_and_the_readme_load() {
        let rules = |lines: &mut dyn Iterator<Item = &str>| {
            let examples: String = lines
                .filter(|l| l.starts_with("rewrite."))
                .map(|l| format!("{l}\n"))
                .collect();
            let c = build(&examples).unwrap_or_else(|e| panic!("{e}\n{examples}"));
            c.rewrites.iter().count()
        };
        let shipped = include_str!("../../proxy.conf");
        let mut commented = shipped.lines().filter_map(|l| l.strip_prefix("#   "));
        assert_eq!(rules(&mut commented), 6);
        let readme = include_str!("../../README.md");
        assert_eq!(rules(&mut readme.lines()), 10);
    }

    /// The README's rules stand in one block, which a reader copies whole:
    /// a catch-all written before another rule would leave that rule
    /// unreached, the first match alone applying.
    #[test]
    fn every_rule_of_the_readme_example_is_reached() {
        let readme = include_str!("../../README.md");
        let examples: String = (readme.lines())
            .filter(|l| l.starts_with("rewrite."))
            .map(|l| format!("{l}\n"))
            .collect();
        let c = build(&examples).unwrap_or_else(|e| panic!("{e}\n{examples}"));
        // One request meant for each rule: (its host, its target).
        for (host, target) in [
            ("example.org", "/blog/42/hello"),
            ("example.org", "/v1/users"),
            ("example.org", "/docs/a"),
            ("example.org", "/find/shoes"),
            ("example.org", "/users/42"),
            ("example.org", "/t/a?utm_source=x"),
            ("shop.example.com", "/store/a"),
            ("example.org", "/account/orders"),
            ("example.org", "/shop/a"),
            ("example.org", "/about"),
        ] {
            let rules = c.rewrites.for_request(Some(host), "http");
            assert!(rules.apply(target).unwrap().is_some(), "{host}{target}");
        }
        let unreached: Vec<&str> = (c.rewrites.iter())
            .filter(|r| r.applied() == 0)
            .map(|r| r.name())
            .collect();
        assert!(unreached.is_empty(), "never applied: {unreached:?}");
    }

    #[test]
    fn at_most_a_hundred_rules() {
        let rules: String = (0..MAX_REWRITES)
            .map(|i| format!("rewrite.r{i} = ^/{i}$ /x\n"))
            .collect();
        assert_eq!(build(&rules).unwrap().rewrites.iter().count(), 100);
        let message = refused(&format!("{rules}rewrite.more = ^/m$ /x\n"));
        assert_eq!(
            message,
            "proxy.conf:102: `rewrite.more`: more than 100 rewrite rules"
        );
    }

    #[test]
    fn deny_rules_are_read_in_the_file_s_order_and_refused_at_their_line() {
        let c = build(
            "deny.bots = if header_reg User-Agent (?i)bot\n\
             deny.probes = 444 if path_sub /.env\n\
             pool.api = 127.0.0.1:9002\n",
        )
        .unwrap();
        let rules: Vec<String> = (c.deny.iter())
            .map(|r| format!("{} {r}", r.name()))
            .collect();
        assert_eq!(
            rules,
            [
                "bots 403 if header_reg user-agent (?i)bot",
                "probes 444 if path_sub /.env"
            ]
        );
        // The proxy's, as rewrites: a pool has none of its own.
        assert!(c.pools[0].config.deny.is_empty());
        for (text, message) in [
            (
                "deny.a = 200 if method POST",
                "proxy.conf:2: deny.a: `200`: a rule refuses",
            ),
            (
                "deny.a = if",
                "proxy.conf:2: deny.a: `if`: a rule is `[<status>] if <condition>`",
            ),
            (
                "deny. = if method POST",
                "proxy.conf:2: `deny.` needs a name after the dot",
            ),
            (
                "deny.a b = if method POST",
                "proxy.conf:2: `deny.a b`: a rule's name is",
            ),
            (
                "deny.a = if method POST\ndeny.a = if method PUT",
                "proxy.conf:3: duplicate key `deny.a`",
            ),
        ] {
            let e = refused(text);
            assert!(e.starts_with(message), "{text}: {e}");
        }
        let rules: String = (0..MAX_DENY_RULES)
            .map(|i| format!("deny.r{i} = if query q{i}\n"))
            .collect();
        assert_eq!(build(&rules).unwrap().deny.iter().count(), 100);
        let message = refused(&format!("{rules}deny.more = if query m\n"));
        assert_eq!(
            message,
            "proxy.conf:102: `deny.more`: more than 100 deny rules"
        );
    }

    #[test]
    fn rewrite_keys_come_from_the_file_alone() {
        let mut l = Loader::new();
        l.file(
            "proxy.conf",
            "targets = 127.0.0.1:1\nrewrite.old = ^/old/(.*)$ /new/$1\n",
        )
        .unwrap();
        // Warned about and ignored.
        l.env([("INVERSO_REWRITE_OLD".to_string(), "^/x$ /y".to_string())]);
        let e = l
            .clone()
            .flag("rewrite.old", "^/x$ /y", "--set")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "flag --set: `rewrite.old`: pool.*, route.*, rewrite.*, deny.* and stream.* keys are read from the \
             configuration file only"
        );
        let c = l.build().unwrap();
        let patterns: Vec<&str> = c.rewrites.iter().map(|r| r.pattern()).collect();
        assert_eq!(patterns, ["^/old/(.*)$"]);
        let shown: Vec<(String, String, String)> = l
            .rewrite_settings()
            .map(|(k, s)| (k, s.value.clone(), s.origin.to_string()))
            .collect();
        assert_eq!(
            shown,
            [(
                "rewrite.old".to_string(),
                "^/old/(.*)$ /new/$1".to_string(),
                "proxy.conf:2".to_string()
            )]
        );
    }
}
