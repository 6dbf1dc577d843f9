//! The search query parser and planner on arbitrary input: never a panic, and a query that
//! plans prints back (term by term) to terms that parse the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opsdesk_core::search::{parse, plan, Kind, PlanContext};

fuzz_target!(|data: &[u8]| {
    let Ok(q) = std::str::from_utf8(data) else {
        return;
    };
    let cx = PlanContext {
        now: 1_800_000_000,
        user_field_keys: vec!["plan".into()],
        organization_field_keys: vec!["support_level".into()],
    };
    if let Ok(terms) = parse(q) {
        let printed = terms.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" ");
        let again = parse(&printed).expect("printed terms parse");
        assert_eq!(terms.len(), again.len());
        for kind in [None, Some(Kind::Ticket), Some(Kind::User), Some(Kind::Organization)] {
            let _ = plan(&terms, kind, &cx);
        }
    }
});
