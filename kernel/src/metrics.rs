//! Numeric metrics read from a run's outputs, with no logging call in the
//! code: a pure function, fed by whichever thread assembles the run.
//!
//! # Rules (the only place they live; each has a unit test below)
//!
//! What is read ([`Output`]): `stream` text, and the `text/plain` or
//! `application/json` data of `execute_result` and `display_data`. Error
//! outputs (tracebacks) are never read.
//!
//! A metric is one of:
//! 1. an `execute_result` whose `text/plain` is a single number (`0.93`):
//!    the metric [`RESULT_NAME`];
//! 2. a flat JSON object (`application/json`) whose values are numbers:
//!    each numeric value under its key;
//! 3. a `name: number` or `name=number` pair in text (`= ` may have spaces
//!    around it, `:` only after it): Keras' `loss: 0.2312 - accuracy:
//!    0.9102`, tqdm postfixes `loss=0.23`, Lightning's `train_loss=0.231`,
//!    and the entries of a printed dict `{'eval_loss': 0.31, 'epoch': 1.0}`
//!    (a quoted name).
//!
//! A name starts with a letter or `_`, holds letters, digits, `_` and `/`
//! (`train/loss`), and starts at a word boundary. A number is decimal,
//! optionally signed, with an optional fraction and exponent (`5e-05`).
//!
//! Never a metric: a number followed by `:` and a digit (a time of day
//! `12:30`, `12:30:01`, an ETA `00:05<00:10`), by `.` and a digit (a version
//! `1.2.3`, an IP address `10.0.0.1`), by `-` and a digit (a date
//! `2024-01-05`), by `/` (a ratio `3/10`), by a letter (a hex id `0x1f`,
//! `3fa2b1c`, a unit `12ms`, `1.9it/s`) or by `%`: a percentage is not taken,
//! as progress bars print them and `91%` next to `0.91` under one name would
//! make a nonsense series. `nan` and `inf` are not numbers here. Names that
//! label identifiers or clocks ([`IGNORED_NAMES`]: `pid`, `port`, `id`,
//! `version`, `eta`, `time`, …) are never metrics.
//!
//! A name seen several times in one run is a series, in output order; its
//! last value is the run's value.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The metric name of a cell whose result is a number.
pub const RESULT_NAME: &str = "result";

/// Names that label identifiers, counters of the machine or clocks, not
/// measurements (compared case-insensitively).
pub const IGNORED_NAMES: &[&str] = &[
    "date", "elapsed", "errno", "eta", "gid", "id", "line", "pid", "port", "time", "uid", "version",
];

/// One output of a run, as the recorder has it.
#[derive(Debug, Clone, Copy)]
pub struct Output<'a> {
    /// The message type: `stream`, `execute_result`, `display_data`, `error`.
    pub output_type: &'a str,
    /// The MIME type of `text` (`text/plain`, `application/json`); for
    /// streams, `text/plain`.
    pub mime: &'a str,
    pub text: &'a str,
}

/// A metric of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    /// Every value, in output order (a series when more than one).
    pub values: Vec<f64>,
    /// The run's value: the last one.
    pub last: f64,
}

/// The metrics of one run's outputs, in order of first appearance.
pub fn extract(outputs: &[Output<'_>]) -> Vec<Metric> {
    let mut found = Found::default();
    for output in outputs {
        match (output.output_type, output.mime) {
            ("stream", _) => pairs(output.text, &mut found),
            ("execute_result" | "display_data", "text/plain") => {
                if output.output_type == "execute_result" {
                    if let Some(value) = whole_number(output.text.trim()) {
                        found.push(RESULT_NAME, value);
                        continue;
                    }
                }
                pairs(output.text, &mut found);
            }
            ("execute_result" | "display_data", "application/json") => {
                json_object(output.text, &mut found);
            }
            _ => {}
        }
    }
    found.metrics
}

#[derive(Default)]
struct Found {
    metrics: Vec<Metric>,
    index: HashMap<String, usize>,
}

impl Found {
    fn push(&mut self, name: &str, value: f64) {
        if IGNORED_NAMES
            .iter()
            .any(|ignored| ignored.eq_ignore_ascii_case(name))
        {
            return;
        }
        match self.index.get(name) {
            Some(&at) => {
                let metric = &mut self.metrics[at];
                metric.values.push(value);
                metric.last = value;
            }
            None => {
                self.index.insert(name.to_owned(), self.metrics.len());
                self.metrics.push(Metric {
                    name: name.to_owned(),
                    values: vec![value],
                    last: value,
                });
            }
        }
    }
}

fn json_object(text: &str, found: &mut Found) {
    let Ok(serde_json::Value::Object(object)) = serde_json::from_str(text) else {
        return;
    };
    for (key, value) in object {
        if let Some(number) = value.as_f64() {
            if number.is_finite() {
                found.push(&key, number);
            }
        }
    }
}

/// The whole of `text` as a number, when it is one and nothing else.
fn whole_number(text: &str) -> Option<f64> {
    let (value, end) = number(text.as_bytes(), 0)?;
    (end == text.len()).then_some(value)
}

/// A decimal number starting at `start`: its value and where it ends.
fn number(bytes: &[u8], start: usize) -> Option<(f64, usize)> {
    let mut i = start;
    if matches!(bytes.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let digits = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let int_end = digits(i);
    let mut end = int_end;
    if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
        end = digits(end + 1);
    }
    if end == int_end && int_end == i {
        return None;
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut exp = end + 1;
        if matches!(bytes.get(exp), Some(b'-' | b'+')) {
            exp += 1;
        }
        let exp_end = digits(exp);
        if exp_end > exp {
            end = exp_end;
        }
    }
    let text = std::str::from_utf8(&bytes[start..end]).ok()?;
    let value: f64 = text.parse().ok()?;
    value.is_finite().then_some((value, end))
}

/// Whether what follows a number at `end` makes it something else: a time,
/// a version, a date, a ratio, a hex id, a unit, a percentage.
fn followed_by_non_metric(bytes: &[u8], end: usize) -> bool {
    let next = bytes.get(end).copied();
    let after = bytes.get(end + 1).copied();
    match next {
        Some(b':' | b'.' | b'-') => after.is_some_and(|b| b.is_ascii_digit()),
        Some(b'/' | b'%') => true,
        Some(b) => b.is_ascii_alphanumeric() || b == b'_',
        None => false,
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'/'
}

/// `name: number` and `name=number` pairs (names may be quoted).
fn pairs(text: &str, found: &mut Found) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let quote = matches!(b, b'\'' | b'"').then_some(b);
        let name_start = if quote.is_some() { i + 1 } else { i };
        let starts_name = bytes
            .get(name_start)
            .is_some_and(|&c| c.is_ascii_alphabetic() || c == b'_');
        let at_boundary = i == 0 || !is_name_byte(bytes[i - 1]) && bytes[i - 1] != b'.';
        if !(starts_name && at_boundary) {
            i += 1;
            continue;
        }
        let mut name_end = name_start;
        while name_end < bytes.len() && is_name_byte(bytes[name_end]) {
            name_end += 1;
        }
        // A name ends on a letter, digit or `_`, not on `/`.
        let name_end_trimmed = {
            let mut end = name_end;
            while end > name_start && bytes[end - 1] == b'/' {
                end -= 1;
            }
            end
        };
        let mut j = name_end;
        if let Some(quote) = quote {
            if bytes.get(j) != Some(&quote) {
                i = name_end;
                continue;
            }
            j += 1;
        }
        let value_start = match bytes.get(j) {
            Some(b':') => skip_spaces(bytes, j + 1),
            Some(b'=') => skip_spaces(bytes, j + 1),
            Some(b' ') if quote.is_none() => {
                let k = skip_spaces(bytes, j);
                if bytes.get(k) == Some(&b'=') {
                    skip_spaces(bytes, k + 1)
                } else {
                    i = name_end;
                    continue;
                }
            }
            _ => {
                i = name_end.max(i + 1);
                continue;
            }
        };
        if let Some((value, end)) = number(bytes, value_start) {
            if !followed_by_non_metric(bytes, end) && name_end_trimmed == name_end {
                found.push(&text[name_start..name_end], value);
            }
            i = end;
        } else {
            i = name_end.max(i + 1);
        }
    }
}

fn skip_spaces(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i) == Some(&b' ') {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(text: &str) -> Vec<Metric> {
        extract(&[Output {
            output_type: "stream",
            mime: "text/plain",
            text,
        }])
    }

    fn result(text: &str) -> Vec<Metric> {
        extract(&[Output {
            output_type: "execute_result",
            mime: "text/plain",
            text,
        }])
    }

    /// (name, last) pairs.
    fn lasts(metrics: &[Metric]) -> Vec<(&str, f64)> {
        metrics.iter().map(|m| (m.name.as_str(), m.last)).collect()
    }

    #[test]
    fn a_numeric_result_is_a_metric() {
        assert_eq!(lasts(&result("0.93")), vec![("result", 0.93)]);
        assert_eq!(lasts(&result("-12")), vec![("result", -12.0)]);
        assert_eq!(lasts(&result("5e-05\n")), vec![("result", 5e-05)]);
        assert!(result("'0.93'").is_empty());
        assert!(result("12:30").is_empty());
        assert!(result("1.2.3").is_empty());
    }

    #[test]
    fn a_dict_of_numbers_gives_each_entry() {
        assert_eq!(
            lasts(&result("{'eval_loss': 0.31, 'epoch': 1.0}")),
            vec![("eval_loss", 0.31), ("epoch", 1.0)]
        );
        assert_eq!(
            lasts(&stream(
                "{'loss': 0.6925, 'learning_rate': 5e-05, 'epoch': 0.5}\n"
            )),
            vec![("loss", 0.6925), ("learning_rate", 5e-05), ("epoch", 0.5)]
        );
    }

    #[test]
    fn a_json_object_of_numbers_gives_each_numeric_entry() {
        let metrics = extract(&[Output {
            output_type: "display_data",
            mime: "application/json",
            text: r#"{"eval_loss": 0.31, "epoch": 1, "run": "abc", "nested": {"x": 1}}"#,
        }]);
        assert_eq!(lasts(&metrics), vec![("epoch", 1.0), ("eval_loss", 0.31)]);
    }

    #[test]
    fn keras_logs_are_series_with_the_last_value() {
        let log = (1..=5)
            .map(|epoch| {
                format!(
                    "Epoch {epoch}/5\n32/32 [==============================] - 1s 12ms/step - loss: 0.{} - accuracy: 0.9{}\n",
                    60 - epoch * 10,
                    epoch
                )
            })
            .collect::<String>();
        let metrics = stream(&log);
        assert_eq!(lasts(&metrics), vec![("loss", 0.1), ("accuracy", 0.95)]);
        assert_eq!(metrics[0].values, vec![0.5, 0.4, 0.3, 0.2, 0.1]);
        assert_eq!(metrics[1].values.len(), 5);
    }

    #[test]
    fn tqdm_and_lightning_postfixes_are_read() {
        let tqdm = "100%|██████████| 10/10 [00:05<00:00,  1.9it/s, loss=0.23]\n";
        assert_eq!(lasts(&stream(tqdm)), vec![("loss", 0.23)]);
        let lightning =
            "Epoch 0: 100%|██| 50/50 [00:02<00:00, v_num=3, train_loss=0.231, val/acc=0.8]";
        assert_eq!(
            lasts(&stream(lightning)),
            vec![("v_num", 3.0), ("train_loss", 0.231), ("val/acc", 0.8)]
        );
        assert_eq!(lasts(&stream("lr = 0.001")), vec![("lr", 0.001)]);
    }

    #[test]
    fn times_of_day_and_etas_are_not_metrics() {
        assert!(stream("started at 12:30").is_empty());
        assert!(stream("checkpoint: 12:30:01 saved").is_empty());
        assert!(stream("eta: 00:05<00:10").is_empty());
        assert!(stream("ETA: 3s").is_empty());
        assert!(stream("time: 0.5").is_empty());
    }

    #[test]
    fn ratios_dates_versions_and_addresses_are_not_metrics() {
        assert!(stream("correct: 3/10").is_empty());
        assert!(stream("date: 2024-01-05").is_empty());
        assert!(stream("run=2024-01-05T10:00").is_empty());
        assert!(stream("numpy: 1.26.4").is_empty());
        assert!(stream("version: 1.2").is_empty());
        assert!(stream("host=10.0.0.1").is_empty());
        assert!(stream("server: 192.168.1.20:8888").is_empty());
    }

    #[test]
    fn hex_ids_and_units_are_not_metrics() {
        assert!(stream("commit: 3fa2b1c").is_empty());
        assert!(stream("addr=0x7f3a2c").is_empty());
        assert!(stream("object at 0x7f3a2c10").is_empty());
        assert!(stream("step_time: 12ms").is_empty());
        assert!(stream("pid: 4242").is_empty());
    }

    #[test]
    fn percentages_are_not_metrics() {
        assert!(stream("accuracy: 91.2%").is_empty());
        assert!(stream(" 45%|████▌     | 45/100").is_empty());
    }

    #[test]
    fn names_need_a_word_boundary_and_a_number() {
        assert!(stream("http://example.org:8080/x").is_empty());
        assert!(stream("loss: nan").is_empty());
        assert!(stream("note: see above").is_empty());
        assert!(stream("a.b=3").is_empty());
        assert_eq!(lasts(&stream("total: 42.")), vec![("total", 42.0)]);
    }

    #[test]
    fn errors_are_never_read() {
        let metrics = extract(&[Output {
            output_type: "error",
            mime: "text/plain",
            text: "ValueError: loss=0.3",
        }]);
        assert!(metrics.is_empty());
    }

    #[test]
    fn metrics_across_outputs_form_one_series() {
        let outputs = [
            Output {
                output_type: "stream",
                mime: "text/plain",
                text: "loss=0.5\n",
            },
            Output {
                output_type: "stream",
                mime: "text/plain",
                text: "loss=0.4\n",
            },
            Output {
                output_type: "execute_result",
                mime: "text/plain",
                text: "0.88",
            },
        ];
        let metrics = extract(&outputs);
        assert_eq!(metrics[0].values, vec![0.5, 0.4]);
        assert_eq!(lasts(&metrics), vec![("loss", 0.4), ("result", 0.88)]);
        let json = serde_json::to_string(&metrics).unwrap();
        let back: Vec<Metric> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, metrics);
    }

    /// Prints the time to read 100 KB of Keras-style log (budget: 1 ms):
    /// `cargo test --release --lib metrics -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_extract() {
        let line = "32/32 [==============================] - 1s 12ms/step - loss: 0.2312 - accuracy: 0.9102 at 12:30:01\n";
        let text = line.repeat(100_000 / line.len() + 1);
        let output = [Output {
            output_type: "stream",
            mime: "text/plain",
            text: &text,
        }];
        let rounds = 200;
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(extract(&output));
        }
        println!(
            "metrics: {} bytes of text in {:?}",
            text.len(),
            start.elapsed() / rounds
        );
    }
}
