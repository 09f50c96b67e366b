//! `health_check_conversation`: a probe's exchange in steps, as HAProxy's
//! lists of `tcp-check send` and `tcp-check expect string` rules:
//! `expect 220 | send EHLO inverso.check\r\n | expect 250 | send QUIT\r\n`.
//! Each step's text is written as `health_check_send`'s is (see
//! [`super::escaped`]), so a `|` in one is `\x7c`.

use std::sync::Arc;

/// The most steps one conversation takes: an SMTP or Redis dialogue needs
/// a handful, and each `expect` may read up to a probe's limit.
pub const MAX_STEPS: usize = 16;

/// One step of a probe's conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeStep {
    /// Bytes written once the steps before are done.
    Send(Arc<[u8]>),
    /// Bytes that what arrived since the last send (or the connect) must
    /// hold before the next step.
    Expect(Arc<[u8]>),
}

/// The steps `value` writes, 1 to [`MAX_STEPS`] of them, each `send
/// <text>` or `expect <text>`, separated by `|`; the spaces around a step
/// are not its text's (a text that ends in one writes `\x20`).
pub fn parse(value: &str) -> Result<Arc<[ProbeStep]>, String> {
    let written: Vec<&str> = value.split('|').collect();
    if written.len() > MAX_STEPS {
        return Err(format!(
            "step {}: one too many: a conversation takes 1 to {MAX_STEPS} steps",
            MAX_STEPS + 1
        ));
    }
    let steps = (written.iter().enumerate())
        .map(|(i, step)| parse_step(step.trim()).map_err(|e| format!("step {}: {e}", i + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(steps.into())
}

fn parse_step(step: &str) -> Result<ProbeStep, String> {
    let (word, text) = step.split_once([' ', '\t']).unwrap_or((step, ""));
    let text = text.trim_start();
    let make: fn(Arc<[u8]>) -> ProbeStep = match word {
        "send" => ProbeStep::Send,
        "expect" => ProbeStep::Expect,
        "" => return Err("empty: each step is `send <text>` or `expect <text>`".into()),
        other => {
            return Err(format!(
                "`{}`: each step is `send <text>` or `expect <text>`",
                other.escape_debug()
            ))
        }
    };
    if text.is_empty() {
        return Err(format!("{word} what? Its text is empty"));
    }
    super::escaped::parse(text).map(|bytes| make(bytes.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(text: &[u8]) -> ProbeStep {
        ProbeStep::Send(text.into())
    }

    fn expect(text: &[u8]) -> ProbeStep {
        ProbeStep::Expect(text.into())
    }

    #[test]
    fn steps_are_sends_and_expects_separated_by_bars() {
        let smtp =
            parse("expect 220 | send EHLO inverso.check\\r\\n | expect 250 | send QUIT\\r\\n")
                .unwrap();
        assert_eq!(
            &*smtp,
            [
                expect(b"220"),
                send(b"EHLO inverso.check\r\n"),
                expect(b"250"),
                send(b"QUIT\r\n"),
            ]
        );
        // Spaces around a step are dropped, inner ones kept; a bar and a
        // trailing space are written as bytes.
        let odd = parse("  send a  b\\x20|expect\tx\\x7cy  ").unwrap();
        assert_eq!(&*odd, [send(b"a  b "), expect(b"x|y")]);
        assert_eq!(&*parse("send PING\\r\\n").unwrap(), [send(b"PING\r\n")]);
        let most = vec!["expect +OK"; MAX_STEPS].join(" | ");
        assert_eq!(parse(&most).unwrap().len(), MAX_STEPS);
    }

    #[test]
    fn a_bad_step_is_refused_by_its_number() {
        for (bad, says) in [
            ("expect 220 | sned EHLO", "step 2: `sned`: each step is"),
            ("expect 220 | | send QUIT", "step 2: empty: each step is"),
            ("expect 220 |", "step 2: empty"),
            ("send", "step 1: send what? Its text is empty"),
            ("expect 220 | expect   ", "step 2: expect what?"),
            ("SEND x", "step 1: `SEND`"),
            ("send a | expect \\q", "step 2: a backslash begins"),
            ("expect220", "step 1: `expect220`"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.starts_with(says), "{bad}: {e}");
        }
        let long = format!("expect 220 | send {}", "a".repeat(1_233));
        let e = parse(&long).unwrap_err();
        assert!(e.starts_with("step 2: 1233 bytes: "), "{e}");
        let e = parse(&vec!["send a"; MAX_STEPS + 1].join("|")).unwrap_err();
        assert_eq!(
            e,
            "step 17: one too many: a conversation takes 1 to 16 steps"
        );
    }
}
