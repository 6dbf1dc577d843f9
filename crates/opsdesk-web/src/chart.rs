//! Line charts drawn on the server as inline SVG: no chart library, no script, nothing the
//! content security policy has to allow. Each chart is an image with a title for screen
//! readers; its numbers are in a table beside it.

use std::fmt::Write;

/// How a chart's values read.
#[derive(Clone, Copy, PartialEq)]
pub enum Scale {
    /// 0..1 shown as percentages, with a target line.
    Percent(Option<f64>),
    /// 0..1 shown as percentages, with a target band (low, high).
    PercentBand(f64, f64),
    /// Counts or minutes, from zero.
    Number,
}

pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// Colour-blind-safe palette (Okabe-Ito), dark enough on white for lines.
const COLOURS: [&str; 6] = [
    "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#8a6d00", "#56b4e9",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fmt(v: f64, scale: Scale) -> String {
    match scale {
        Scale::Percent(_) | Scale::PercentBand(..) => format!("{:.1} %", v * 100.0),
        Scale::Number if v.abs() >= 100.0 || v.fract() == 0.0 => format!("{v:.0}"),
        Scale::Number => format!("{v:.1}"),
    }
}

/// The top of the y axis: the next 1, 2, 2.5 or 5 × 10^k × 4 above `v` (four even steps).
fn nice_max(v: f64) -> f64 {
    let v = v.max(1.0) * 1.05;
    let raw = v / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|st| *st >= raw)
        .unwrap_or(10.0 * mag)
        .max(1.0); // counts and minutes: whole steps
    step * 4.0
}

/// An axis label: ISO weeks as `W38`, with the year where it starts or changes.
fn short(l: &str, i: usize, labels: &[String]) -> String {
    match l.split_once("-W") {
        Some((y, w)) => {
            let prev_year = i
                .checked_sub(1)
                .and_then(|p| labels.get(p))
                .and_then(|p| p.split_once("-W"))
                .map(|(py, _)| py);
            if i == 0 || prev_year != Some(y) {
                format!("{y} W{w}")
            } else {
                format!("W{w}")
            }
        }
        None => l.to_string(),
    }
}

/// An SVG line chart of `series` over `labels` (one value per label; gaps where None).
pub fn line(id: &str, title: &str, labels: &[String], series: &[Series], scale: Scale) -> String {
    const PER_ROW: usize = 4;
    let legend_rows = series.len().div_ceil(PER_ROW).max(1) as f64;
    let (w, h) = (720.0_f64, 236.0_f64 + 18.0 * legend_rows);
    let (left, right, top, bottom) = (56.0, 30.0, 16.0, 36.0 + 18.0 * legend_rows);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let max = match scale {
        Scale::Percent(_) | Scale::PercentBand(..) => 1.0,
        Scale::Number => nice_max(
            series
                .iter()
                .flat_map(|s| s.values.iter().flatten())
                .fold(0.0_f64, |m, v| m.max(*v)),
        ),
    };
    let n = labels.len().max(1);
    let x = |i: usize| {
        if n == 1 {
            left + pw / 2.0
        } else {
            left + pw * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| top + ph * (1.0 - (v / max).clamp(0.0, 1.0));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-labelledby="{id}-title" xmlns="http://www.w3.org/2000/svg"><title id="{id}-title">{}</title>"#,
        escape(title)
    );
    // Grid and y labels: five steps.
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let yy = y(v);
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#d0d7de" stroke-width="1"/><text x="{}" y="{:.1}" text-anchor="end" font-size="11" fill="#57606a">{}</text>"##,
            w - right,
            left - 6.0,
            yy + 4.0,
            fmt(v, scale)
        );
    }
    if let Scale::PercentBand(lo, hi) = scale {
        let _ = write!(
            s,
            r##"<rect x="{left}" y="{:.1}" width="{pw:.1}" height="{:.1}" fill="#116329" fill-opacity="0.12"/><text x="{}" y="{:.1}" text-anchor="end" font-size="11" fill="#116329">target {}–{}</text>"##,
            y(hi),
            y(lo) - y(hi),
            w - right,
            y(hi) - 4.0,
            fmt(lo, scale),
            fmt(hi, scale)
        );
    }
    if let Scale::Percent(Some(t)) = scale {
        let yy = y(t);
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#a40e26" stroke-width="1.5" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" text-anchor="end" font-size="11" fill="#a40e26">target {}</text>"##,
            w - right,
            w - right,
            yy - 4.0,
            fmt(t, scale)
        );
    }
    // X labels: at most 12, evenly picked.
    let every = n.div_ceil(12).max(1);
    for (i, l) in labels.iter().enumerate() {
        if i % every == 0 || i == n - 1 {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{}" text-anchor="middle" font-size="11" fill="#57606a">{}</text>"##,
                x(i),
                h - bottom + 16.0,
                escape(&short(l, i, labels))
            );
        }
    }
    for (si, ser) in series.iter().enumerate() {
        let c = COLOURS[si % COLOURS.len()];
        // One polyline per run of values (a gap breaks the line).
        let mut run: Vec<String> = vec![];
        let flush = |run: &mut Vec<String>, s: &mut String| {
            if run.len() > 1 {
                let _ = write!(
                    s,
                    r#"<polyline fill="none" stroke="{c}" stroke-width="2.5" points="{}"/>"#,
                    run.join(" ")
                );
            }
            run.clear();
        };
        for (i, v) in ser.values.iter().enumerate() {
            match v {
                Some(v) => {
                    run.push(format!("{:.1},{:.1}", x(i), y(*v)));
                    let _ = write!(
                        s,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{c}"><title>{} {}: {}</title></circle>"#,
                        x(i),
                        y(*v),
                        escape(&ser.name),
                        escape(labels.get(i).map(String::as_str).unwrap_or("")),
                        fmt(*v, scale)
                    );
                }
                None => flush(&mut run, &mut s),
            }
        }
        flush(&mut run, &mut s);
        // Legend under the chart, four to a row.
        let lx = left + 166.0 * (si % PER_ROW) as f64;
        let ly = h - bottom + 34.0 + 18.0 * (si / PER_ROW) as f64;
        let _ = write!(
            s,
            r##"<rect x="{lx}" y="{}" width="14" height="4" fill="{c}"/><text x="{}" y="{}" font-size="12" fill="#1b1f24">{}</text>"##,
            ly - 5.0,
            lx + 20.0,
            ly,
            escape(&ser.name)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_escapes_names_and_breaks_lines_at_gaps() {
        let labels: Vec<String> = ["W1", "W2", "W3", "W4"].map(String::from).to_vec();
        let svg = line(
            "c",
            "Solved <b>",
            &labels,
            &[Series {
                name: "a&b".into(),
                values: vec![Some(1.0), Some(2.0), None, Some(4.0)],
            }],
            Scale::Number,
        );
        assert!(svg.contains("Solved &lt;b&gt;"));
        assert!(svg.contains("a&amp;b"));
        // Two points before the gap make one line; the single point after it makes none.
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 3);
        let pct = line("p", "SLA", &labels, &[], Scale::Percent(Some(0.95)));
        assert!(pct.contains("target 95.0 %"));
        assert_eq!(nice_max(12.1), 20.0);
        assert_eq!(nice_max(290.0), 400.0);
        assert_eq!(nice_max(0.0), 4.0);
        let weeks: Vec<String> = ["2026-W52", "2026-W53", "2027-W01"]
            .map(String::from)
            .to_vec();
        let labels: Vec<String> = (0..3).map(|i| short(&weeks[i], i, &weeks)).collect();
        assert_eq!(labels, ["2026 W52", "W53", "2027 W01"]);
    }
}
