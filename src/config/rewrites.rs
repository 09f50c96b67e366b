//! `rewrite.<name> = <pattern> <replacement> [<flag>] [host=<hosts>]`:
//! the rules that
//! change a request's path, or answer it with a redirect, before it is
//! routed (see [`crate::rewrite`]). In the file only, tried in its order.

use super::pools::on_line;
use super::{ConfigError, Loader, Origin, Setting};
use crate::rewrite::{check_name, Rewrites, Rule, MAX_REWRITES};

/// A `rewrite.<name>` key as read.
#[derive(Clone, Debug)]
pub(super) struct RewriteKey {
    name: String,
    setting: Setting,
}

impl Loader {
    /// Takes `rewrite.<name> = value` from the file; its rule is read at
    /// [`Loader::build`], as a route's is.
    pub(super) fn rewrite_key(
        &mut self,
        name: &str,
        value: &str,
        origin: Origin,
    ) -> Result<(), ConfigError> {
        if name.is_empty() {
            return Err(ConfigError::at(
                &origin,
                "`rewrite.` needs a name after the dot, \
                 e.g. `rewrite.old-blog = ^/blog/(.*)$ /articles/$1 permanent`",
            ));
        }
        check_name(name).map_err(|m| ConfigError::at(&origin, m))?;
        if let Some(first) = self.rewrite_keys.iter().find(|k| k.name == name) {
            let first = on_line(&first.setting, &origin);
            return Err(ConfigError::at(
                &origin,
                format!("duplicate key `rewrite.{name}`{first}"),
            ));
        }
        if self.rewrite_keys.len() >= MAX_REWRITES {
            return Err(ConfigError::at(
                &origin,
                format!("`rewrite.{name}`: more than {MAX_REWRITES} rewrite rules"),
            ));
        }
        self.rewrite_keys.push(RewriteKey {
            name: name.to_string(),
            setting: Setting {
                value: value.to_string(),
                origin,
            },
        });
        Ok(())
    }

    /// Every `rewrite.<name>` key with its value and origin, in the
    /// file's order (the order its rules are tried in).
    pub fn rewrite_settings(&self) -> impl Iterator<Item = (String, &Setting)> {
        (self.rewrite_keys.iter()).map(|k| (format!("rewrite.{}", k.name), &k.setting))
    }

    /// The rules, each refused at its line when it cannot be read.
    pub(super) fn build_rewrites(&self) -> Result<Rewrites, ConfigError> {
        let mut rules = Vec::with_capacity(self.rewrite_keys.len());
        for RewriteKey { name, setting } in &self.rewrite_keys {
            let rule = Rule::parse(name, &setting.value)
                .map_err(|m| ConfigError::at(&setting.origin, format!("rewrite.{name}: {m}")))?;
            rules.push(rule);
        }
        Ok(Rewrites::new(rules))
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
            "flag --set: `rewrite.old`: pool.*, route.*, rewrite.* and stream.* keys are read from the \
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
