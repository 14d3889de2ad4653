//! Pure quota arithmetic on `i64` quota. The rounding rules, written down once:
//!
//! - text: `quota = ceil(group_ratio * model_ratio * (prompt + completion * completion_ratio))`;
//!   at least 1 when the ratio is not 0 and tokens were used; 0 tokens cost 0; never negative.
//! - estimate (pre-consume): `ceil(group_ratio * model_ratio * (prompt + max_tokens))`, where
//!   `max_tokens` falls back to `PreConsumedQuota`.
//! - images: `floor(ratio * size_ratio * 1000) * n` (One API).
//! - speech: `ceil(ratio * input bytes)`; transcription: `ceil(ratio * text tokens)` (One API
//!   forgot the ratio there, we apply it).

/// The ratios that price one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub model_ratio: f64,
    pub completion_ratio: f64,
    pub group_ratio: f64,
}

impl Price {
    /// `group_ratio * model_ratio`, clamped at 0 (a negative ratio must never credit a user).
    pub fn ratio(&self) -> f64 {
        (self.model_ratio * self.group_ratio).max(0.0)
    }

    /// One API's log text for the ratios used. Remembered per thread for the last price: a
    /// float rounded to two places often falls back to exact (Dragon4) formatting, 2% of a
    /// relayed request's instructions, and consecutive requests mostly share their price.
    pub fn describe(&self) -> String {
        thread_local! {
            static LAST: std::cell::RefCell<(Option<Price>, String)> = const {
                std::cell::RefCell::new((None, String::new()))
            };
        }
        LAST.with_borrow_mut(|(price, text)| {
            if *price != Some(*self) {
                *text = format!(
                    "倍率：{:.2} × {:.2} × {:.2}",
                    self.model_ratio, self.group_ratio, self.completion_ratio
                );
                *price = Some(*self);
            }
            text.clone()
        })
    }
}

fn ceil_quota(x: f64) -> i64 {
    if !x.is_finite() || x <= 0.0 {
        return 0;
    }
    let c = x.ceil();
    if c >= i64::MAX as f64 {
        i64::MAX
    } else {
        c as i64
    }
}

/// The final price of a text request.
pub fn text_quota(price: &Price, prompt_tokens: i64, completion_tokens: i64) -> i64 {
    let prompt = prompt_tokens.max(0);
    let completion = completion_tokens.max(0);
    if prompt + completion == 0 {
        return 0;
    }
    let ratio = price.ratio();
    let q =
        ceil_quota(ratio * (prompt as f64 + completion as f64 * price.completion_ratio.max(0.0)));
    if ratio != 0.0 && q == 0 { 1 } else { q }
}

/// The amount reserved before the upstream call.
pub fn pre_consume_estimate(
    price: &Price,
    prompt_tokens: i64,
    max_tokens: Option<i64>,
    pre_consumed: i64,
) -> i64 {
    let extra = match max_tokens {
        Some(m) if m > 0 => m,
        _ => pre_consumed.max(0),
    };
    let q = ceil_quota(price.ratio() * (prompt_tokens.max(0) + extra) as f64);
    if price.ratio() != 0.0 && q == 0 { 1 } else { q }
}

/// How a reservation is settled: `reserved + delta == charged`. A negative delta is a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delta {
    pub charged: i64,
    pub delta: i64,
}

/// Settles a reservation against the actual price.
pub fn settle(reserved: i64, actual: i64) -> Delta {
    Delta {
        charged: actual,
        delta: actual - reserved,
    }
}

/// One API's per-size price factor for images; `None` when the size is not offered.
pub fn image_size_ratio(model: &str, size: &str, quality: &str) -> Option<f64> {
    let r = match model {
        "dall-e-2" => match size {
            "256x256" => 1.0,
            "512x512" => 1.125,
            "1024x1024" => 1.25,
            _ => return None,
        },
        "dall-e-3" => {
            let base = match size {
                "1024x1024" => 1.0,
                "1024x1792" | "1792x1024" => 2.0,
                _ => return None,
            };
            if quality == "hd" {
                if size == "1024x1024" {
                    base * 2.0
                } else {
                    base * 1.5
                }
            } else {
                base
            }
        }
        _ => 1.0,
    };
    Some(r)
}

/// The price of `n` images.
pub fn image_quota(ratio: f64, size_ratio: f64, n: i64) -> i64 {
    let one = (ratio.max(0.0) * size_ratio * 1000.0).floor();
    let one = if one.is_finite() { one as i64 } else { 0 };
    one.saturating_mul(n.max(1))
}

/// The price of a text-to-speech request (per input byte).
pub fn speech_quota(ratio: f64, input_bytes: usize) -> i64 {
    let q = ceil_quota(ratio * input_bytes as f64);
    if ratio > 0.0 && input_bytes > 0 && q == 0 {
        1
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(m: f64, c: f64, g: f64) -> Price {
        Price {
            model_ratio: m,
            completion_ratio: c,
            group_ratio: g,
        }
    }

    #[test]
    fn descriptions_follow_the_price_they_describe() {
        // The per-thread memo must never hand one price's text to another.
        for _ in 0..2 {
            assert_eq!(p(0.75, 3.0, 1.0).describe(), "倍率：0.75 × 1.00 × 3.00");
            assert_eq!(p(15.0, 2.0, 0.5).describe(), "倍率：15.00 × 0.50 × 2.00");
            assert_eq!(p(15.0, 2.0, 0.5).describe(), "倍率：15.00 × 0.50 × 2.00");
        }
        assert_eq!(p(f64::NAN, 1.0, 1.0).describe(), "倍率：NaN × 1.00 × 1.00");
    }

    #[test]
    fn table() {
        // gpt-3.5-turbo: 0.25 * (100 + 50 * 3) = 62.5 -> 63
        assert_eq!(text_quota(&p(0.25, 3.0, 1.0), 100, 50), 63);
        // gpt-4: 15 * (10 + 20 * 2) = 750
        assert_eq!(text_quota(&p(15.0, 2.0, 1.0), 10, 20), 750);
        // tiny price rounds up to 1
        assert_eq!(text_quota(&p(0.0001, 1.0, 1.0), 1, 0), 1);
        // free model
        assert_eq!(text_quota(&p(0.0, 1.0, 1.0), 1000, 1000), 0);
        // nothing used
        assert_eq!(text_quota(&p(15.0, 2.0, 1.0), 0, 0), 0);
        // negative ratio never credits
        assert_eq!(text_quota(&p(-500000.0, 1.0, 1.0), 10, 10), 0);
        // estimate
        assert_eq!(
            pre_consume_estimate(&p(15.0, 2.0, 1.0), 10, Some(100), 500),
            1650
        );
        assert_eq!(
            pre_consume_estimate(&p(15.0, 2.0, 1.0), 10, None, 500),
            7650
        );
        assert_eq!(image_quota(20.0, 1.0, 1), 20000);
        assert_eq!(image_quota(10.0, 1.125, 2), 22500);
        assert_eq!(image_size_ratio("dall-e-3", "1024x1792", "hd"), Some(3.0));
        assert_eq!(image_size_ratio("dall-e-2", "1x1", ""), None);
        assert_eq!(speech_quota(7.5, 10), 75);
    }

    proptest! {
        #[test]
        fn never_negative_and_monotonic(
            m in 0.0f64..100.0, c in 0.0f64..10.0, g in 0.0f64..5.0,
            prompt in 0i64..1_000_000, completion in 0i64..1_000_000, more in 0i64..1000,
        ) {
            let price = p(m, c, g);
            let q = text_quota(&price, prompt, completion);
            prop_assert!(q >= 0);
            prop_assert!(text_quota(&price, prompt + more, completion) >= q);
            prop_assert!(text_quota(&price, prompt, completion + more) >= q);
            if price.ratio() > 0.0 && prompt + completion > 0 {
                prop_assert!(q >= 1);
            }
            let exact = price.ratio() * (prompt as f64 + completion as f64 * c);
            prop_assert!(q as f64 >= exact - 1e-6 * exact.max(1.0));
        }

        #[test]
        fn settle_adds_up(reserved in 0i64..10_000_000, actual in 0i64..10_000_000) {
            let d = settle(reserved, actual);
            prop_assert_eq!(reserved + d.delta, d.charged);
            prop_assert_eq!(d.charged, actual);
        }

        #[test]
        fn estimate_covers_usage_within_max_tokens(
            m in 0.0f64..100.0, g in 0.0f64..5.0,
            prompt in 0i64..100_000, max in 1i64..100_000, completion in 0i64..100_000,
        ) {
            // With completion ratio 1 and completion <= max_tokens, the estimate covers the bill.
            let price = p(m, 1.0, g);
            let completion = completion.min(max);
            prop_assert!(pre_consume_estimate(&price, prompt, Some(max), 500)
                >= text_quota(&price, prompt, completion));
        }
    }
}
