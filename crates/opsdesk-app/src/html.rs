//! Comment bodies: plain text to HTML, HTML sanitised and flattened to plain text.

/// Escape text for HTML.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// Zendesk-style HTML for a plain-text comment: paragraphs split on blank lines, `<br>` for
/// single newlines.
pub fn text_to_html(body: &str) -> String {
    let paras: Vec<String> = body
        .replace("\r\n", "\n")
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            format!(
                "<p>{}</p>",
                escape(p.trim_matches('\n')).replace('\n', "<br>")
            )
        })
        .collect();
    format!(
        "<div class=\"zd-comment\" dir=\"auto\">{}</div>",
        paras.join("")
    )
}

/// Sanitise customer- or agent-written HTML (scripts, handlers, styles removed).
pub fn sanitize(html: &str) -> String {
    ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(html)
        .to_string()
}

/// Plain text of an HTML body: tags dropped, block ends become newlines, entities decoded.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut tag = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        if in_tag {
            if c == '>' {
                in_tag = false;
                let t = tag
                    .trim_start_matches('/')
                    .split(|c: char| c.is_whitespace() || c == '/')
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if matches!(
                    t.as_str(),
                    "br" | "p" | "div" | "li" | "tr" | "h1" | "h2" | "h3" | "h4" | "blockquote"
                ) && !out.ends_with('\n')
                    && !out.is_empty()
                {
                    out.push('\n');
                }
                tag.clear();
            } else {
                tag.push(c);
            }
        } else if c == '<' {
            in_tag = true;
        } else {
            out.push(c);
        }
    }
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_becomes_paragraphs() {
        assert_eq!(
            text_to_html("a <b>\nc\n\nd"),
            "<div class=\"zd-comment\" dir=\"auto\"><p>a &lt;b&gt;<br>c</p><p>d</p></div>"
        );
    }

    #[test]
    fn scripts_are_removed() {
        let s = sanitize("<p onclick=\"x()\">hi<script>alert(1)</script></p>");
        assert_eq!(s, "<p>hi</p>");
    }

    #[test]
    fn html_flattens() {
        assert_eq!(
            html_to_text("<p>Hello &amp; bye</p><p>two<br>three</p>"),
            "Hello & bye\ntwo\nthree"
        );
    }
}
