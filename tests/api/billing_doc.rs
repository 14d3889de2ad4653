//! docs/billing.md's worked examples, recomputed with the billing code from the page's inputs;
//! each result must be the one the page states.

use serde_json::json;
use tollgate::billing::quota::{Price, pre_consume_estimate, text_quota};
use tollgate::billing::ratio::Ratios;
use tollgate::options::Options;
use tollgate::tokenizer;

fn page() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/billing.md"))
        .expect("docs/billing.md")
}

fn states(page: &str, text: &str) {
    assert!(page.contains(text), "docs/billing.md should say `{text}`");
}

fn price(r: &Ratios, model: &str, group: &str) -> Price {
    Price {
        model_ratio: r.model_ratio(model, 1),
        completion_ratio: r.completion_ratio(model, 1),
        group_ratio: r.group_ratio(group),
    }
}

#[test]
fn worked_examples_match_the_code() {
    let page = page();
    let defaults = Options::with_rows([]);
    let r = Ratios::from_options(&defaults);
    let per_dollar = defaults.quota_per_unit();

    // 1: gpt-3.5-turbo, usage 10 + 20.
    let p = price(&r, "gpt-3.5-turbo", "default");
    assert_eq!(
        (p.model_ratio, p.completion_ratio, p.group_ratio),
        (0.25, 3.0, 1.0)
    );
    let q = text_quota(&p, 10, 20);
    states(
        &page,
        &format!("ceil(1 × 0.25 × (10 + 20 × 3)) = ceil(17.5) = {q}` quota"),
    );
    states(&page, &format!("= ${}", q as f64 / per_dollar));

    // 2: gpt-4 streamed without usage, group vip at 0.5.
    let vip = Ratios::from_options(&Options::with_rows([(
        "GroupRatio".to_string(),
        r#"{"default":1,"vip":0.5}"#.to_string(),
    )]));
    let p = price(&vip, "gpt-4", "vip");
    assert_eq!(
        (p.model_ratio, p.completion_ratio, p.group_ratio),
        (15.0, 2.0, 0.5)
    );
    let prompt = tokenizer::count_messages("gpt-4", &[json!({"role": "user", "content": "hi"})]);
    assert_eq!(prompt, 8);
    let completion = tokenizer::count_text("gpt-4", "Hello world!");
    assert_eq!(completion, 3);
    let q = text_quota(&p, prompt, completion);
    states(
        &page,
        &format!("ceil(0.5 × 15 × (8 + 3 × 2)) = ceil(105) = {q}` quota"),
    );
    states(&page, &format!("= ${}", q as f64 / per_dollar));
    let q_default = text_quota(&price(&vip, "gpt-4", "default"), prompt, completion);
    states(
        &page,
        &format!("ceil(1 × 15 × (8 + 3 × 2)) = {q_default}` quota"),
    );
    // ... and its consume log.
    states(&page, &format!("`content` = `{}`", p.describe()));

    // 3: reservation and refund.
    let p = price(&r, "gpt-4", "default");
    let pre = defaults.i64("PreConsumedQuota");
    assert_eq!(pre, 500);
    let reserved = pre_consume_estimate(&p, prompt, Some(100), pre);
    states(
        &page,
        &format!("ceil(1 × 15 × (8 + 100)) = {reserved}` quota"),
    );
    let charged = text_quota(&p, prompt, 20);
    states(&page, &format!("ceil(15 × (8 + 20 × 2)) = {charged}`"));
    states(
        &page,
        &format!("`{reserved} − {charged} = {}` quota", reserved - charged),
    );
    let reserved_default = pre_consume_estimate(&p, prompt, None, pre);
    states(
        &page,
        &format!("ceil(15 × (8 + 500)) = {reserved_default}`"),
    );
    states(
        &page,
        &format!("and {} come back", reserved_default - charged),
    );

    // The printed ratios of a log are rounded: gpt-4o-mini's 0.075.
    let mini = price(&r, "gpt-4o-mini", "default");
    assert_eq!(mini.model_ratio, 0.075);
    assert!(
        mini.describe().starts_with("倍率：0.07 × "),
        "{}",
        mini.describe()
    );
}
