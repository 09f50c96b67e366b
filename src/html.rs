//! Text written into HTML pages: the autoindex listing of a `files`
//! route, the admin listener's page, and a request's values in a
//! `return` route's HTML text.

/// `text` with what HTML reads as markup escaped, and a control
/// character (a line feed, a terminal's escape, a bidirectional
/// override) as `\u{fffd}`: a name cannot draw rows of its own, nor
/// show its extension reversed (`invoice\u{202e}fdp.exe`).
pub fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            c if c.is_control() || crate::json::is_bidi_control(c) => out.push('\u{fffd}'),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_controls_are_escaped() {
        let mut out = String::new();
        push_escaped(&mut out, "<a href='x'>&\"\n\u{202e}é");
        assert_eq!(
            out,
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;\u{fffd}\u{fffd}é"
        );
    }
}
