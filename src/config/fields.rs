//! The `request_header.<Name>` and `response_header.<Name>` keys: their
//! two families, read from the file alone, and the fields each sets or
//! removes.

use super::{pools, values, Config, ConfigError, Loader, Origin, Setting};
use crate::http::edits::{FieldEdit, FieldEdits};
use crate::http::status_rule::{StatusRule, StatusTest};
use crate::routes::Condition;

/// A key family that sets (or, with an empty value, removes) a header
/// field: `request_header.X-Backend-Auth = s3cret` on every request sent
/// to a backend, `response_header.X-Frame-Options = DENY` on every
/// response sent to a client. One key per field, since values hold the
/// commas and semicolons a list would split at (`Content-Security-Policy`,
/// `Strict-Transport-Security`). File only: an environment variable's
/// name cannot spell the `.` and `-`. Both families share their syntax and
/// rules; which names each may edit is [`values::parse_field_edit`]'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldFamily {
    Request,
    Response,
}

impl FieldFamily {
    pub const ALL: [FieldFamily; 2] = [FieldFamily::Request, FieldFamily::Response];

    /// What every key of the family begins with, dot included.
    pub fn prefix(self) -> &'static str {
        match self {
            FieldFamily::Request => "request_header.",
            FieldFamily::Response => "response_header.",
        }
    }

    /// The family's name, without the dot: `response_header`.
    pub(super) fn name(self) -> &'static str {
        self.prefix().trim_end_matches('.')
    }

    /// The messages its fields are set on or removed from, for `check`
    /// and errors.
    pub fn messages(self) -> &'static str {
        match self {
            FieldFamily::Request => "every request sent to a backend",
            FieldFamily::Response => "every response",
        }
    }

    /// A key's field name and value that set a field, and one that
    /// removes one, for messages.
    pub(super) fn examples(self) -> (&'static str, &'static str) {
        match self {
            FieldFamily::Request => ("X-Backend-Auth = s3cret", "X-Debug ="),
            FieldFamily::Response => ("X-Frame-Options = DENY", "X-Powered-By ="),
        }
    }

    /// The family `key` belongs to, and the field name after its dot.
    pub(super) fn of(key: &str) -> Option<(FieldFamily, &str)> {
        FieldFamily::ALL
            .into_iter()
            .find_map(|f| key.strip_prefix(f.prefix()).map(|name| (f, name)))
    }

    /// The family whose name `key` (lower case, as an environment
    /// variable's is read) begins with, dot or not.
    pub(super) fn named_at_start_of(key: &str) -> Option<FieldFamily> {
        FieldFamily::ALL
            .into_iter()
            .find(|f| key.starts_with(f.name()))
    }
}

/// A `request_header.<Name> [if <condition>]` or `response_header.<Name>
/// [if <condition>]` key as read: the name and the condition as written,
/// and its value.
#[derive(Clone, Debug)]
pub(super) struct FieldKey {
    pub(super) family: FieldFamily,
    pub(super) name: String,
    pub(super) condition: Option<String>,
    pub(super) setting: Setting,
}

impl FieldKey {
    /// The key `<family prefix><spec> = value`, `spec` being the name and
    /// any condition; `scope` (`pool.api.`) is written before it in
    /// messages.
    pub(super) fn read(
        family: FieldFamily,
        scope: &str,
        spec: &str,
        (value, origin): (&str, Origin),
    ) -> Result<FieldKey, ConfigError> {
        let setting = Setting {
            value: value.to_string(),
            origin,
        };
        let prefix = family.prefix();
        if spec.is_empty() {
            let example = match scope {
                "" => family.examples().0,
                _ => "Host",
            };
            return Err(ConfigError::at(
                &setting.origin,
                format!("`{scope}{prefix}` needs a field name after the dot, e.g. `{scope}{prefix}{example}`"),
            ));
        }
        let Ok((name, condition)) = pools::split_condition(spec) else {
            return Err(ConfigError::at(
                &setting.origin,
                format!(
                    "{scope}{prefix}{spec}: `{}` is not a header field name, nor one followed \
                     by `if <condition>`",
                    spec.escape_debug()
                ),
            ));
        };
        Ok(FieldKey {
            family,
            name: name.to_string(),
            condition: condition.map(|c| c.split_whitespace().collect::<Vec<_>>().join(" ")),
            setting,
        })
    }

    /// The key as written, but for spaces: `response_header.X-A if
    /// cookie b`.
    pub(super) fn written(&self) -> String {
        let condition = self.condition.as_deref().map(|c| format!(" if {c}"));
        format!(
            "{}{}{}",
            self.family.prefix(),
            self.name,
            condition.unwrap_or_default()
        )
    }

    /// Whether `other` is the same key: one family, one field name in any
    /// case, and one condition or none.
    fn same_as(&self, other: &FieldKey) -> bool {
        self.family == other.family
            && self.name.eq_ignore_ascii_case(&other.name)
            && self.condition == other.condition
    }

    /// The key `keys` already hold that `self` would set again, as a
    /// `duplicate key` error; or one more than
    /// [`values::MAX_FIELD_EDITS`] of its family.
    pub(super) fn refused_beside<'k>(
        &self,
        keys: impl Iterator<Item = &'k FieldKey> + Clone,
        scope: &str,
    ) -> Result<(), ConfigError> {
        let origin = &self.setting.origin;
        if let Some(first) = keys.clone().find(|k| k.same_as(self)) {
            let first = pools::on_line(&first.setting, origin);
            return Err(ConfigError::at(
                origin,
                format!("duplicate key `{scope}{}`{first}", self.written()),
            ));
        }
        let prefix = self.family.prefix();
        if keys.filter(|k| k.family == self.family).count() >= values::MAX_FIELD_EDITS {
            return Err(ConfigError::at(
                origin,
                format!(
                    "`{scope}{}`: more than {} {scope}{prefix}* keys",
                    self.written(),
                    values::MAX_FIELD_EDITS
                ),
            ));
        }
        Ok(())
    }
}

impl Loader {
    /// Takes `request_header.<name> [if <condition>] = value` or
    /// `response_header.<name> [if <condition>] = value` from the file:
    /// one key per family, field name, in any case (two spellings of one
    /// name are one field), and condition.
    pub(super) fn field_key(
        &mut self,
        family: FieldFamily,
        spec: &str,
        value: &str,
        origin: Origin,
    ) -> Result<(), ConfigError> {
        let key = FieldKey::read(family, "", spec, (value, origin))?;
        key.refused_beside(self.field_keys.iter(), "")?;
        self.field_keys.push(key);
        Ok(())
    }

    /// Every `request_header.<Name>` and `response_header.<Name>` key (as
    /// written, with its condition) with its family, whether it has a
    /// condition, its value and origin, in the file's order.
    pub fn field_settings(&self) -> impl Iterator<Item = (FieldFamily, String, bool, &Setting)> {
        (self.field_keys.iter()).map(|k| (k.family, k.written(), k.condition.is_some(), &k.setting))
    }

    /// The fields the keys of `family` set and remove, each checked where
    /// it came from: a name the proxy writes itself (the request's ID
    /// field among them), a value that is no field value.
    pub(super) fn field_edits(
        &self,
        family: FieldFamily,
        config: &Config,
    ) -> Result<FieldEdits, ConfigError> {
        let keys = self.field_keys.iter().filter(|k| k.family == family);
        self.field_edits_of(family, keys, "", config)
    }

    /// [`Loader::field_edits`] of `keys` (all of `family`), whose names
    /// are shown after `scope` (`pool.api.` for a pool's).
    pub(super) fn field_edits_of<'k>(
        &self,
        family: FieldFamily,
        keys: impl Iterator<Item = &'k FieldKey>,
        scope: &str,
        config: &Config,
    ) -> Result<FieldEdits, ConfigError> {
        let mut edits = Vec::new();
        for key in keys {
            let FieldKey { name, setting, .. } = key;
            let refused = |message: String| {
                let key = format!("{scope}{}", key.written());
                ConfigError::at(&setting.origin, format!("{key}: {message}"))
            };
            let value = values::parse_field_edit(family, name, &setting.value).map_err(refused)?;
            let (asked, on_status) = match key.condition.as_deref() {
                Some(condition) => split_status(condition).map_err(refused)?,
                None => (None, None),
            };
            if family == FieldFamily::Request && on_status.is_some() {
                return Err(refused(
                    "a request is sent on before there is a status: only a response_header \
                     key's condition may name one"
                        .to_string(),
                ));
            }
            let when = asked.as_deref().map(Condition::parse).transpose();
            let when = when.map_err(refused)?;
            if let Some(when) = &when {
                when.needs_geoip(config.geoip.is_some()).map_err(refused)?;
            }
            // The name backends answer to, which the pool's probes send
            // and its redirects are read against, is one.
            if family == FieldFamily::Request && when.is_some() && name.eq_ignore_ascii_case("host")
            {
                return Err(refused(
                    "a pool's backends are sent one Host: set it without a condition".to_string(),
                ));
            }
            // As a backend that reads `_` as `-` would read a request's.
            let same = |id: &str| match family {
                FieldFamily::Request => id.eq_ignore_ascii_case(&name.replace('_', "-")),
                FieldFamily::Response => id.eq_ignore_ascii_case(name),
            };
            if config.request_id_header.as_deref().is_some_and(same) {
                return Err(refused(format!(
                    "{name} is request_id_header, which the proxy writes on {} itself",
                    family.messages()
                )));
            }
            // Its own redirects' Location would otherwise go out beside the
            // value set (two places to go), or be the one field a removal
            // leaves on a response.
            if family == FieldFamily::Response
                && config.redirect_to_https
                && name.eq_ignore_ascii_case("location")
            {
                return Err(refused(
                    "with redirect_to_https on, the proxy writes Location on its redirects itself"
                        .to_string(),
                ));
            }
            edits.push(FieldEdit {
                name: name.clone(),
                value,
                when,
                on_status,
            });
        }
        FieldEdits::new(edits).map_err(|message| ConfigError {
            place: self.file.clone(),
            message,
        })
    }
}

/// A response field's condition as written, split into what the request
/// is asked (its other parts, joined by `and` again), and what the
/// response's status is (`status <list>` and `not status <list>` parts).
fn split_status(condition: &str) -> Result<(Option<String>, Option<StatusRule>), String> {
    let words: Vec<&str> = condition.split_whitespace().collect();
    let (mut asked, mut tests) = (Vec::new(), Vec::new());
    for part in words.split(|w| *w == "and") {
        let (negated, list) = match part {
            [] => {
                return Err(format!(
                    "`if {condition}`: `and` needs a condition on each side"
                ))
            }
            ["status", list @ ..] => (false, list),
            ["not", "status", list @ ..] => (true, list),
            _ => {
                asked.push(part.join(" "));
                continue;
            }
        };
        let ranges = status_list(&list.join(" "))?;
        tests.push(StatusTest { negated, ranges });
    }
    let asked = (!asked.is_empty()).then(|| asked.join(" and "));
    Ok((asked, StatusRule::new(tests)))
}

/// `404`, `4xx`, `500-504`, or several of them with commas between.
fn status_list(list: &str) -> Result<Box<[(u16, u16)]>, String> {
    let mut ranges = Vec::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let class = item.strip_suffix("xx").or_else(|| item.strip_suffix("XX"));
        match class.and_then(|c| c.parse::<u16>().ok()) {
            Some(class @ 1..=5) => ranges.push((class * 100, class * 100 + 99)),
            _ => ranges.extend(values::parse_status_ranges(item)?),
        }
    }
    match ranges.len() {
        0 => Err(
            "`status` needs statuses after it: `status 404`, `status 5xx`, \
                  `status 500-504,404`"
                .to_string(),
        ),
        33.. => Err(format!("`status {list}`: at most 32 statuses or ranges")),
        _ => Ok(ranges.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::build;

    /// The `response_header.*` keys of `text` (after a targets line), as
    /// the fields they set and remove.
    fn field_edits(text: &str) -> Result<Vec<(String, Option<String>)>, ConfigError> {
        let c = build(&format!("targets = 127.0.0.1:1\n{text}"))?;
        let edits = c.response_headers.iter();
        Ok(edits
            .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
            .collect())
    }

    #[test]
    fn response_header_keys_set_and_remove_fields_in_file_order() {
        assert_eq!(field_edits("").unwrap(), []);
        assert!(build("targets = 127.0.0.1:1\n")
            .unwrap()
            .response_headers
            .is_empty());
        let text = "response_header.Strict-Transport-Security = max-age=63072000; includeSubDomains\n\
                    response_header.Content-Security-Policy = default-src 'self'; img-src * data:, x\n\
                    response_header.X-Powered-By =      # empty: removed\n\
                    response_header.Server =\n\
                    response_header.Cache-Control =  public, max-age=60  \n\
                    response_header.Set-Cookie =\n\
                    response_header.X-Tab = a\tb \"q\" 'x'\n";
        let some = |v: &str| Some(v.to_string());
        assert_eq!(
            field_edits(text).unwrap(),
            [
                (
                    "Strict-Transport-Security".to_string(),
                    some("max-age=63072000; includeSubDomains")
                ),
                (
                    "Content-Security-Policy".to_string(),
                    some("default-src 'self'; img-src * data:, x")
                ),
                ("X-Powered-By".to_string(), None),
                ("Server".to_string(), None),
                ("Cache-Control".to_string(), some("public, max-age=60")),
                ("Set-Cookie".to_string(), None),
                ("X-Tab".to_string(), some("a\tb \"q\" 'x'")),
            ]
        );
        let long = "v".repeat(8 * 1024);
        let e = field_edits(&format!("response_header.X-Long = {long}\n")).unwrap();
        assert_eq!(e[0].1.as_ref().map(String::len), Some(8 * 1024));
        // At most 64, each name once.
        let lines: String = (0..64)
            .map(|i| format!("response_header.X-{i} = {i}\n"))
            .collect();
        assert_eq!(field_edits(&lines).unwrap().len(), 64);
        let e = field_edits(&format!("{lines}response_header.X-64 = 64\n")).unwrap_err();
        assert_eq!(e.place, "proxy.conf:66");
        assert!(e.message.contains("more than 64"), "{e}");
    }

    #[test]
    fn a_response_header_name_given_twice_in_any_case_is_a_duplicate_key() {
        let e = field_edits(
            "response_header.X-Frame-Options = DENY\n# again\nresponse_header.x-frame-OPTIONS = SAMEORIGIN\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy.conf:4: duplicate key `response_header.x-frame-OPTIONS` (first set on line 2)"
        );
        // Removing and setting one field is twice the same key too.
        let e = field_edits("response_header.Server =\nresponse_header.server = x\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:3");
        assert!(e.message.contains("duplicate key"), "{e}");
    }

    #[test]
    fn response_header_names_the_proxy_writes_or_frames_with_are_refused() {
        for (name, says) in [
            ("Content-Length", "frames the message"),
            ("transfer-encoding", "frames the message"),
            ("Connection", "frames the message"),
            ("Keep-Alive", "frames the message"),
            ("Proxy-Connection", "frames the message"),
            ("TE", "frames the message"),
            ("Trailer", "frames the message"),
            ("Upgrade", "frames the message"),
            ("Date", "neither set nor removed"),
            ("age", "neither set nor removed"),
            ("X-Cache", "neither set nor removed"),
            ("Vary", "neither set nor removed"),
            ("ETag", "neither set nor removed"),
            ("Last-Modified", "neither set nor removed"),
            ("Content-Range", "neither set nor removed"),
            ("Content-Type", "same type"),
            ("Content-Encoding", "neither set nor removed"),
            ("Accept-Ranges", "neither set nor removed"),
            ("Retry-After", "neither set nor removed"),
            ("Allow", "neither set nor removed"),
        ] {
            for value in ["x", ""] {
                let line = format!("response_header.{name} = {value}\n");
                let e = field_edits(&line).unwrap_err();
                assert_eq!(e.place, "proxy.conf:2", "{line}");
                let key = format!("response_header.{name}: ");
                assert!(e.message.starts_with(&key), "{line}: {e}");
                assert!(e.message.contains(says), "{line}: {e}");
            }
        }
        // Set-Cookie: removed, not set.
        assert!(field_edits("response_header.Set-Cookie =\n").is_ok());
        let e = field_edits("response_header.Set-Cookie = sid=1\n").unwrap_err();
        assert!(
            e.message.contains("removed (an empty value) but not set"),
            "{e}"
        );
        // The request's ID field is the proxy's, wherever the two keys stand.
        for text in [
            "request_id_header = X-Request-ID\nresponse_header.x-request-id = 1\n",
            "response_header.X-Request-Id =\nrequest_id_header = X-Request-ID\n",
        ] {
            let e = field_edits(text).unwrap_err();
            assert!(e.message.contains("is request_id_header"), "{text:?}: {e}");
            let line = if text.starts_with("request") { 3 } else { 2 };
            assert_eq!(e.place, format!("proxy.conf:{line}"), "{text:?}");
        }
        assert!(
            field_edits("request_id_header = X-Request-ID\nresponse_header.X-Trace = 1\n").is_ok()
        );
    }

    #[test]
    fn response_header_values_are_visible_ascii_of_at_most_8_kib() {
        let long = "v".repeat(8 * 1024 + 1);
        for (value, says) in [
            ("a\rX-Injected: 1", "control character"),
            ("a\u{7f}b", "control character"),
            ("a\0b", "control character"),
            ("a\u{1b}[31m", "control character"),
            ("caf\u{e9}", "outside ASCII"),
            (long.as_str(), "at most 8192"),
        ] {
            let e = field_edits(&format!("response_header.X-A = {value}\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{value:?}");
            assert!(e.message.starts_with("response_header.X-A: "), "{e}");
            assert!(e.message.contains(says), "{value:?}: {e}");
            // One line, whatever the value held.
            assert!(!e.to_string().contains(['\r', '\n', '\u{1b}']), "{e}");
        }
        for name in ["X A", "X:A", "X(A)", "X\"A", "caf\u{e9}"] {
            let e = field_edits(&format!("response_header.{name} = 1\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{name:?}");
            assert!(
                e.message.contains("is not a header field name"),
                "{name:?}: {e}"
            );
        }
    }

    #[test]
    fn response_header_without_a_name_or_misspelt_says_what_was_meant() {
        for (line, says) in [
            (
                "response_header. = x",
                "`response_header.` needs a field name after the dot",
            ),
            (
                "response_header.   = x",
                "`response_header.` needs a field name after the dot",
            ),
            (
                "response_header = X-Frame-Options: DENY",
                "`response_header` needs a field name",
            ),
            (
                "respons_header.X-A = 1",
                "unknown key `respons_header.X-A` (did you mean `response_header.X-A`?)",
            ),
            (
                "response_headers.X-A = 1",
                "unknown key `response_headers.X-A` (did you mean `response_header.X-A`?)",
            ),
            (
                "Response-Header.X-A = 1",
                "(did you mean `response_header.X-A`?)",
            ),
            (
                "response_headers = 1",
                "(did you mean `response_header.<Field-Name>`",
            ),
            (
                "reponse_hedaer.X-A = 1",
                "(did you mean `response_header.X-A`?)",
            ),
            (
                "requst_header.X-A = 1",
                "unknown key `requst_header.X-A` (did you mean `request_header.X-A`?)",
            ),
            (
                "request_headers.Host = a",
                "(did you mean `request_header.Host`?)",
            ),
            (
                "request_header = X-A: 1",
                "`request_header` needs a field name: `request_header.X-Backend-Auth = s3cret` \
                 sets that field on every request sent to a backend",
            ),
            (
                "request_headers = 1",
                "(did you mean `request_header.<Field-Name>`",
            ),
            (
                "request_header. = x",
                "`request_header.` needs a field name after the dot",
            ),
            (
                "requests_id_header = X-ID",
                "(did you mean `request_id_header`?)",
            ),
            ("header.X-A = 1", "unknown key `header.X-A`"),
            ("resp.X-A = 1", "unknown key `resp.X-A`"),
            ("add_header.X-A = 1", "unknown key `add_header.X-A`"),
        ] {
            let e = field_edits(&format!("{line}\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{line}");
            assert!(e.message.contains(says), "{line}: {e}");
            if says.starts_with("unknown key `") && !says.contains("did you") {
                assert!(!e.message.contains("did you"), "{line}: {e}");
            }
        }
    }

    #[test]
    fn response_header_keys_come_from_the_file_alone() {
        let mut l = Loader::new();
        l.file(
            "proxy.conf",
            "targets = 127.0.0.1:1\nresponse_header.X-A = 1\n",
        )
        .unwrap();
        // Warned about and ignored, as any variable naming no key.
        l.env([("INVERSO_RESPONSE_HEADER_X_A".to_string(), "2".to_string())]);
        let e = l
            .clone()
            .flag("response_header.X-A", "3", "--set")
            .unwrap_err();
        assert_eq!(e.place, "flag --set");
        assert!(e.message.contains("configuration file only"), "{e}");
        let c = l.build().unwrap();
        let edits: Vec<_> = c.response_headers.iter().collect();
        assert_eq!(edits, [("X-A", Some("1"))]);
        let shown: Vec<_> = l
            .field_settings()
            .map(|(f, k, _, s)| (f, k, s.value.clone(), s.origin.to_string()))
            .collect();
        assert_eq!(
            shown,
            [(
                FieldFamily::Response,
                "response_header.X-A".to_string(),
                "1".to_string(),
                "proxy.conf:2".to_string()
            )]
        );
    }

    /// The `request_header.*` keys of `text` (after a targets line), as
    /// the fields they set and remove.
    fn request_edits(text: &str) -> Result<Vec<(String, Option<String>)>, ConfigError> {
        let c = build(&format!("targets = 127.0.0.1:1\n{text}"))?;
        let edits = c.request_headers.iter();
        Ok(edits
            .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
            .collect())
    }

    #[test]
    fn request_header_keys_set_and_remove_fields_in_file_order() {
        assert!(build("targets = 127.0.0.1:1\n")
            .unwrap()
            .request_headers
            .is_empty());
        let text = "request_header.Host = api.internal:8080\n\
                    request_header.X-Backend-Auth =  Bearer abc; scope=\"a, b\"  \n\
                    request_header.Accept-Encoding =\n\
                    request_header.X-Debug =   # empty: removed\n\
                    request_header.Cookie =\n\
                    request_header.Authorization = Basic dXNlcjpwdw==\n\
                    request_header.X_Api_Key = k\n\
                    response_header.X-Debug = 1\n";
        let some = |v: &str| Some(v.to_string());
        assert_eq!(
            request_edits(text).unwrap(),
            [
                ("Host".to_string(), some("api.internal:8080")),
                (
                    "X-Backend-Auth".to_string(),
                    some("Bearer abc; scope=\"a, b\"")
                ),
                ("Accept-Encoding".to_string(), None),
                ("X-Debug".to_string(), None),
                ("Cookie".to_string(), None),
                ("Authorization".to_string(), some("Basic dXNlcjpwdw==")),
                ("X_Api_Key".to_string(), some("k")),
            ]
        );
        // Each family its own: the response key is not a request edit.
        let c = build(&format!("targets = 127.0.0.1:1\n{text}")).unwrap();
        let response: Vec<_> = c.response_headers.iter().collect();
        assert_eq!(response, [("X-Debug", Some("1"))]);
        // At most 64 of each family.
        let lines: String = (0..64)
            .map(|i| format!("request_header.X-{i} = {i}\nresponse_header.X-{i} = {i}\n"))
            .collect();
        assert_eq!(request_edits(&lines).unwrap().len(), 64);
        let e = request_edits(&format!("{lines}request_header.X-64 = 64\n")).unwrap_err();
        assert_eq!(e.place, "proxy.conf:130");
        assert!(
            e.message.contains("more than 64 request_header.* keys"),
            "{e}"
        );
    }

    #[test]
    fn a_request_header_name_given_twice_in_any_case_is_a_duplicate_key() {
        let e = request_edits(
            "request_header.X-Backend-Auth = a\n# again\nrequest_header.x-backend-AUTH = b\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy.conf:4: duplicate key `request_header.x-backend-AUTH` (first set on line 2)"
        );
        let e = request_edits("request_header.HOST = a\nrequest_header.host = b\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:3");
        assert!(e.message.contains("duplicate key"), "{e}");
        // The same name in both families is two keys.
        assert!(request_edits("request_header.X-A = 1\nresponse_header.x-a = 1\n").is_ok());
    }

    #[test]
    fn request_header_names_the_proxy_writes_frames_with_or_reads_are_refused() {
        for (name, says) in [
            ("Content-Length", "frames the message"),
            ("Transfer-Encoding", "frames the message"),
            ("connection", "frames the message"),
            ("Keep-Alive", "frames the message"),
            ("TE", "frames the message"),
            ("Trailer", "frames the message"),
            ("Upgrade", "frames the message"),
            ("Proxy-Connection", "frames the message"),
            ("X-Forwarded-For", "name every client alike"),
            ("x-real-ip", "name every client alike"),
            ("Forwarded", "name every client alike"),
            ("X-Forwarded-Proto", "client's scheme"),
            ("X-Forwarded-Host", "the Host the client asked for"),
            ("Via", "via = false"),
            ("Expect", "100-continue itself"),
            ("Surrogate-Capability", "surrogate_id"),
            ("Range", "neither set nor removed"),
            ("If-Range", "neither set nor removed"),
            ("If-None-Match", "validators"),
            ("If-Modified-Since", "validators"),
            ("If-Match", "validators"),
            ("If-Unmodified-Since", "validators"),
            ("Max-Forwards", "counts it down"),
            // As a backend that reads `_` as `-` would take them.
            ("X_Forwarded_For", "take for X-Forwarded-For"),
            ("Content_Length", "take for Content-Length"),
            ("x_real_ip", "take for x-real-ip"),
        ] {
            for value in ["x", ""] {
                let line = format!("request_header.{name} = {value}\n");
                let e = request_edits(&line).unwrap_err();
                assert_eq!(e.place, "proxy.conf:2", "{line}");
                let key = format!("request_header.{name}: ");
                assert!(e.message.starts_with(&key), "{line}: {e}");
                assert!(e.message.contains(says), "{line}: {e}");
            }
        }
        // What only a response's edits refuse is a request's to edit, and
        // the other way round.
        for name in [
            "Date",
            "ETag",
            "Content-Type",
            "Vary",
            "X-Cache",
            "Set-Cookie",
        ] {
            assert!(
                request_edits(&format!("request_header.{name} = x\n")).is_ok(),
                "{name}"
            );
        }
        assert!(field_edits("response_header.X-Forwarded-For = x\n").is_ok());
        assert!(field_edits("response_header.Cookie = x\n").is_ok());
        // The request's ID field is the proxy's, wherever the two keys
        // stand, and as read with `_` as `-`.
        for text in [
            "request_id_header = X-Request-ID\nrequest_header.x-request-id = 1\n",
            "request_header.X-Request-Id =\nrequest_id_header = X-Request-ID\n",
            "request_id_header = X-Request-ID\nrequest_header.X_Request_ID = 1\n",
        ] {
            let e = request_edits(text).unwrap_err();
            assert!(
                e.message.contains(
                    "is request_id_header, which the proxy writes on every request sent to a \
                     backend itself"
                ),
                "{text:?}: {e}"
            );
            let line = if text.starts_with("request_id") { 3 } else { 2 };
            assert_eq!(e.place, format!("proxy.conf:{line}"), "{text:?}");
        }
    }

    #[test]
    fn host_may_be_set_to_a_host_value_but_not_removed() {
        for good in [
            "api.internal",
            "bucket.s3.example:443",
            "[::1]:8080",
            "10.0.0.2",
        ] {
            let edits = request_edits(&format!("request_header.Host = {good}\n")).unwrap();
            assert_eq!(edits, [("Host".to_string(), Some(good.to_string()))]);
        }
        for removed in [
            "request_header.Host =\n",
            "request_header.host =   # gone\n",
        ] {
            let e = request_edits(removed).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{removed}");
            assert!(
                e.message.contains("Host may be set but not removed"),
                "{removed}: {e}"
            );
        }
        for bad in ["a b", "a/b", "user@a", "a%2eb", "a,b"] {
            let e = request_edits(&format!("request_header.Host = {bad}\n")).unwrap_err();
            assert!(e.message.starts_with("request_header.Host: "), "{bad}: {e}");
            assert!(e.message.contains("is not a Host value"), "{bad}: {e}");
        }
    }

    #[test]
    fn cookie_may_be_removed_from_requests_but_not_set() {
        assert_eq!(
            request_edits("request_header.cookie =\n").unwrap(),
            [("cookie".to_string(), None)]
        );
        let e = request_edits("request_header.Cookie = sid=1\n").unwrap_err();
        assert!(
            e.message.starts_with(
                "request_header.Cookie: Cookie may be removed (an empty value) but not set"
            ),
            "{e}"
        );
    }

    #[test]
    fn authorization_is_sent_fixed_and_never_from_variables() {
        assert_eq!(
            request_edits("request_header.Authorization = Bearer abc\n").unwrap(),
            [("Authorization".to_string(), Some("Bearer abc".to_string()))]
        );
        for name in ["Authorization", "authorization"] {
            let e = request_edits(&format!("request_header.{name} = Bearer $remote_addr\n"))
                .unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{name}");
            assert!(
                e.message
                    .contains("Authorization cannot hold variables: the cache takes"),
                "{name}: {e}"
            );
        }
        // On a response the field goes to the client, and no cache keys on it.
        assert!(field_edits("response_header.Authorization = Bearer $remote_addr\n").is_ok());
    }

    #[test]
    fn request_header_values_are_visible_ascii_of_at_most_8_kib() {
        let long = "v".repeat(8 * 1024 + 1);
        for (value, says) in [
            ("a\rX-Injected: 1", "control character"),
            ("a\u{7f}b", "control character"),
            ("caf\u{e9}", "outside ASCII"),
            (long.as_str(), "at most 8192"),
        ] {
            let e = request_edits(&format!("request_header.X-A = {value}\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{value:?}");
            assert!(e.message.starts_with("request_header.X-A: "), "{e}");
            assert!(e.message.contains(says), "{value:?}: {e}");
        }
        let e = request_edits("request_header.X(A) = 1\n").unwrap_err();
        assert!(e.message.contains("is not a header field name"), "{e}");
    }

    #[test]
    fn request_header_keys_come_from_the_file_alone() {
        let mut l = Loader::new();
        l.file(
            "proxy.conf",
            "targets = 127.0.0.1:1\nresponse_header.X-B = 2\nrequest_header.X-A = 1\n",
        )
        .unwrap();
        // Warned about and ignored, as any variable naming no key.
        l.env([
            ("INVERSO_REQUEST_HEADER_X_A".to_string(), "2".to_string()),
            ("INVERSO_REQUEST_HEADER".to_string(), "X-A: 2".to_string()),
        ]);
        let e = l
            .clone()
            .flag("request_header.X-A", "3", "--set")
            .unwrap_err();
        assert_eq!(e.place, "flag --set");
        assert!(
            e.message.contains(
                "`request_header.X-A`: request_header.<Field-Name> keys are read from the \
                 configuration file only"
            ),
            "{e}"
        );
        let c = l.build().unwrap();
        let edits: Vec<_> = c.request_headers.iter().collect();
        assert_eq!(edits, [("X-A", Some("1"))]);
        // Both families, in the file's order, for `check`.
        let shown: Vec<_> = l
            .field_settings()
            .map(|(f, k, _, s)| (f, k, s.origin.to_string()))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    FieldFamily::Response,
                    "response_header.X-B".to_string(),
                    "proxy.conf:2".to_string()
                ),
                (
                    FieldFamily::Request,
                    "request_header.X-A".to_string(),
                    "proxy.conf:3".to_string()
                ),
            ]
        );
    }

    #[test]
    fn with_redirect_to_https_location_is_the_proxy_s_own() {
        let text = "targets = 127.0.0.1:1\nredirect_to_https = true\nproxy_protocol = true\n";
        for line in [
            "response_header.Location = https://example.com/",
            "response_header.location =",
        ] {
            let e = build(&format!("{text}{line}\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:4", "{line}");
            assert!(e.message.contains("writes Location"), "{line}: {e}");
        }
        let c = build("targets = 127.0.0.1:1\nresponse_header.Location =\n").unwrap();
        assert!(
            !c.redirect_to_https,
            "allowed without the redirect, as before"
        );
        let text = format!("{text}response_header.Strict-Transport-Security = max-age=63072000\n");
        assert!(build(&text).is_ok(), "HSTS beside the redirect");
    }

    #[test]
    fn a_field_key_may_hold_a_condition_and_one_name_several_conditions() {
        let text = "targets = 127.0.0.1:1\n\
                    response_header.X-Frame-Options = DENY\n\
                    response_header.x-frame-options  if  path_beg /embed/ =\n\
                    response_header.X-Frame-Options if path_beg /partners/ = SAMEORIGIN\n\
                    pool.api = 127.0.0.2:1\n\
                    pool.api.response_header.Access-Control-Allow-Origin if header Origin https://a.example = https://a.example\n\
                    request_header.X-Internal if client 10.0.0.0/8 = yes\n";
        let mut loader = Loader::new();
        loader.file("proxy.conf", text).unwrap();
        let keys: Vec<(String, bool)> = (loader.field_settings())
            .map(|(_, key, conditional, _)| (key, conditional))
            .collect();
        assert_eq!(
            keys,
            [
                ("response_header.X-Frame-Options".to_string(), false),
                (
                    "response_header.x-frame-options if path_beg /embed/".to_string(),
                    true
                ),
                (
                    "response_header.X-Frame-Options if path_beg /partners/".to_string(),
                    true
                ),
                (
                    "request_header.X-Internal if client 10.0.0.0/8".to_string(),
                    true
                ),
            ]
        );
        let c = loader.build().unwrap();
        assert!(c.response_headers.per_request());
        assert_eq!(c.response_headers.set_lines(), b"");
        assert!(c.request_headers.per_request());
    }

    #[test]
    fn a_field_key_s_condition_is_checked_where_it_is_written() {
        for (line, says) in [
            (
                "response_header.X-A if cookie a = 1\nresponse_header.x-a  if  cookie a = 2",
                "duplicate key `response_header.x-a if cookie a` (first set on line 2)",
            ),
            (
                "response_header.X-A if = 1",
                "response_header.X-A if: `X-A if` is not a header field name, nor one followed by \
                 `if <condition>`",
            ),
            (
                "response_header.X-A if colour blue = 1",
                "response_header.X-A if colour blue: `if colour blue`",
            ),
            (
                "response_header.X-A when cookie a = 1",
                "`X-A when cookie a` is not a header field name",
            ),
            (
                "request_header.Host if cookie a = h.example",
                "one Host: set it without a condition",
            ),
            (
                "pool.api = 127.0.0.2:1\npool.api.response_header.X-A if cookie a = 1\n\
                 pool.api.response_header.X-A if cookie a = 2",
                "duplicate key `pool.api.response_header.X-A if cookie a`",
            ),
            (
                "request_header.X-A if status 404 = 1",
                "only a response_header key's condition may name one",
            ),
            (
                "response_header.X-A if status = 1",
                "`status` needs statuses after it",
            ),
            (
                "response_header.X-A if status 404,6xx = 1",
                "`6xx` is not a status (100 to 599)",
            ),
            (
                "response_header.X-A if status 404 and = 1",
                "`and` needs a condition on each side",
            ),
            (
                "response_header.X-A if status 404 = 1\nresponse_header.X-A = $uri",
                "X-A is set by the response's status, so its values are text without variables",
            ),
            (
                "route./x if status 404 = default",
                "only a response_header key's condition may name one",
            ),
        ] {
            let e = build(&format!("targets = 127.0.0.1:1\n{line}\n")).unwrap_err();
            assert!(e.to_string().contains(says), "{line}: {e}");
        }
        // One name without a condition, and with two others: three keys.
        let text = "targets = 127.0.0.1:1\nresponse_header.X-A if cookie a = 1\n\
                    response_header.X-A if cookie b = 2\nresponse_header.X-A = 3\n";
        assert!(build(text).is_ok());
        let text = "targets = 127.0.0.1:1\nresponse_header.Cache-Control if status 4xx, 500-504 \
                    and not status 404 and method GET,HEAD = no-store\n";
        build(text).unwrap();
    }
}
