//! The Prometheus text of `/metrics`, read by metric name and labels.

/// Parses `key="value",...` (with `\"` and `\\` escapes) into pairs.
fn parse_labels(labels: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = labels.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('"') {
            break;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(escaped) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => break,
                other => value.push(other),
            }
        }
        out.push((key.trim().to_string(), value));
    }
    out
}

/// Every sample of metric `name`: its labels and value.
pub fn metric_samples(text: &str, name: &str) -> Vec<(Vec<(String, String)>, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || !line.starts_with(name) {
            continue;
        }
        let rest = &line[name.len()..];
        let (labels, value_part) = if let Some(inner) = rest.strip_prefix('{') {
            let Some(end) = inner.rfind('}') else {
                continue;
            };
            (parse_labels(&inner[..end]), &inner[end + 1..])
        } else if rest.starts_with(' ') {
            (Vec::new(), rest)
        } else {
            continue;
        };
        let Some(value) = value_part.split_whitespace().next() else {
            continue;
        };
        if let Ok(v) = value.parse::<f64>() {
            samples.push((labels, v));
        }
    }
    samples
}

/// The sum of the samples of `name` whose labels include every pair of `want`.
pub fn metric_sum(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    metric_samples(text, name)
        .into_iter()
        .filter(|(labels, _)| {
            want.iter()
                .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, v)| v)
        .sum()
}
