//! Every message of the corpus (tests/mail/corpus, real-world shapes: Gmail and Outlook
//! replies, HTML-only, ISO-8859-1, Shift_JIS, attachments, inline images, bounces,
//! auto-replies, bulk) parses to the values its manifest states.

use std::path::PathBuf;

use serde_json::Value;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/mail/corpus")
}

#[test]
fn corpus_parses_as_expected() {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(corpus().join("expected.json")).unwrap()).unwrap();
    let entries = manifest.as_object().unwrap();
    assert!(entries.len() >= 16, "{}", entries.len());
    for (file, want) in entries {
        let raw = std::fs::read(corpus().join(file)).unwrap();
        let p = opsdesk_mail::parse(&raw).unwrap_or_else(|e| panic!("{file}: {e}"));
        let s = |k: &str| want.get(k).and_then(Value::as_str);
        assert_eq!(p.from_address.as_deref(), s("from_address"), "{file} from");
        if let Some(n) = s("from_name") {
            assert_eq!(p.from_name.as_deref(), Some(n), "{file} from name");
        }
        assert_eq!(p.subject, s("subject").unwrap(), "{file} subject");
        assert_eq!(
            p.message_id.as_deref(),
            s("message_id"),
            "{file} message id"
        );
        let irt: Vec<String> = want["in_reply_to"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(p.in_reply_to, irt, "{file} in-reply-to");
        for to in want["to"].as_array().unwrap() {
            assert!(
                p.recipients.contains(&to.as_str().unwrap().to_string()),
                "{file}: {to} not in {:?}",
                p.recipients
            );
        }
        for t in want["text_contains"].as_array().unwrap() {
            let t = t.as_str().unwrap();
            assert!(p.text.contains(t), "{file}: {t:?} not in {:?}", p.text);
        }
        for t in want["text_excludes"].as_array().unwrap() {
            let t = t.as_str().unwrap();
            assert!(!p.text.contains(t), "{file}: {t:?} still in {:?}", p.text);
        }
        let files = want["attachments"].as_array().unwrap();
        assert_eq!(
            p.files.len(),
            files.len(),
            "{file} files {:?}",
            p.files.iter().map(|f| &f.file_name).collect::<Vec<_>>()
        );
        for (got, w) in p.files.iter().zip(files) {
            if let Some(n) = w["file_name"].as_str() {
                assert_eq!(got.file_name, n, "{file}");
            }
            assert_eq!(
                got.content_type,
                w["content_type"].as_str().unwrap(),
                "{file}"
            );
            assert_eq!(
                got.content.len() as u64,
                w["size"].as_u64().unwrap(),
                "{file} {}",
                got.file_name
            );
            assert_eq!(
                got.inline_cid.is_some(),
                w["inline"].as_bool().unwrap(),
                "{file} {} inline",
                got.file_name
            );
        }
        assert_eq!(p.auto.map(|a| a.as_str()), s("auto"), "{file} auto");
        if let Some(b) = s("bounced_recipient") {
            assert_eq!(p.bounced, vec![b.to_string()], "{file}");
        }
    }
}
