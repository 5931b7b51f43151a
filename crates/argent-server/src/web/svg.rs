//! Charts drawn on the server as SVG, with no script: a bar chart and a line chart.
//!
//! Pure functions from figures to markup. Every text is escaped; colours and dashes are
//! presentation attributes (no `style` attribute, which the CSP would refuse), and each
//! series has its own dash pattern as well as its own colour, so it reads without colour.
//! Accessible: the `<svg>` is `role="img"` labelled by its `<title>` and `<desc>`, the
//! axes are labelled, every bar and point has a `<title>` with its exact value, and the
//! page shows the same values in a table beside each chart.

use std::fmt::Write;

const W: f64 = 640.0;
const H: f64 = 260.0;
const LEFT: f64 = 76.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 52.0;

/// Colours and dash patterns of series 0, 1, 2, … (cycled).
const STYLES: &[(&str, &str)] = &[
    ("#1f5fa8", "none"),
    ("#c0392b", "6 3"),
    ("#2e8540", "2 3"),
    ("#8e44ad", "8 3 2 3"),
    ("#b9770e", "1 2"),
];

/// Escapes text for SVG/HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The smallest of 1, 2, 2.5, 5 × 10^k that is ≥ `v` (1 for `v` ≤ 0 or not finite), so
/// the axis' top and its quarter ticks are round numbers.
pub fn nice_ceiling(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= v * (1.0 - 1e-12) {
            return m * mag;
        }
    }
    10.0 * mag
}

fn open(out: &mut String, id: &str, title: &str, desc: &str) {
    let id = esc(id);
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" id=\"{id}\" role=\"img\" \
         viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" \
         aria-labelledby=\"{id}-title {id}-desc\">\
         <title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>",
        esc(title),
        esc(desc)
    );
}

/// The y axis: gridlines and labels at 0, ¼, ½, ¾ and 1 of `top`, and its name.
fn y_axis(out: &mut String, top: f64, y_label: &str, tick: &dyn Fn(f64) -> String) {
    let plot_h = H - TOP - BOTTOM;
    for k in 0..=4 {
        let v = top * f64::from(k) / 4.0;
        let y = TOP + plot_h - plot_h * f64::from(k) / 4.0;
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#dddddd\" stroke-width=\"1\"/>\
             <text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            esc(&tick(v))
        );
    }
    let _ = write!(
        out,
        "<text class=\"axis-label\" x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" \
         text-anchor=\"middle\" font-size=\"12\">{}</text>\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{:.1}\" stroke=\"#333333\"/>\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#333333\"/>",
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        esc(y_label),
        TOP + plot_h,
        TOP + plot_h,
        W - RIGHT,
        TOP + plot_h,
    );
}

fn x_label(out: &mut String, text: &str) {
    let _ = write!(
        out,
        "<text class=\"axis-label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"12\">{}</text>",
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 6.0,
        esc(text)
    );
}

/// One bar: its label on the x axis, its value (what its height is drawn from) and the
/// value as people read it (in the bar's `<title>`).
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: i64,
    pub text: String,
}

/// A bar chart of `bars` (negative values are drawn as 0). `tick` labels the y axis.
pub fn bar_chart(
    id: &str,
    title: &str,
    desc: &str,
    x_label_text: &str,
    y_label: &str,
    bars: &[Bar],
    tick: &dyn Fn(f64) -> String,
) -> String {
    let mut out = String::new();
    open(&mut out, id, title, desc);
    let max = bars.iter().map(|b| b.value.max(0)).max().unwrap_or(0) as f64;
    let top = nice_ceiling(max);
    y_axis(&mut out, top, y_label, tick);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let n = bars.len().max(1) as f64;
    let slot = plot_w / n;
    let bw = (slot * 0.6).max(1.0);
    for (i, b) in bars.iter().enumerate() {
        let h = plot_h * (b.value.max(0) as f64) / top;
        let x = LEFT + slot * i as f64 + (slot - bw) / 2.0;
        let y = TOP + plot_h - h;
        let _ = write!(
            out,
            "<g class=\"bar\"><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{h:.1}\" fill=\"{}\" \
             data-value=\"{}\"><title>{}: {}</title></rect>\
             <text class=\"bar-label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\">{}</text></g>",
            STYLES[0].0,
            b.value,
            esc(&b.label),
            esc(&b.text),
            x + bw / 2.0,
            TOP + plot_h + 16.0,
            esc(&b.label)
        );
    }
    x_label(&mut out, x_label_text);
    out.push_str("</svg>");
    out
}

/// A line of a line chart: its name (in the legend) and one value per x label (`None`:
/// no value that day, the line is broken there).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<Option<f64>>,
}

/// A line chart of `series` over `x_labels` (dates). The y axis starts at 0 (values below
/// are drawn at 0); only the first, middle and last x labels are written, every point's
/// `<title>` has its own. `value` writes a point's value, `tick` the y axis' labels.
#[allow(clippy::too_many_arguments)]
pub fn line_chart(
    id: &str,
    title: &str,
    desc: &str,
    x_label_text: &str,
    y_label: &str,
    x_labels: &[String],
    series: &[Series],
    value: &dyn Fn(f64) -> String,
    tick: &dyn Fn(f64) -> String,
) -> String {
    let mut out = String::new();
    open(&mut out, id, title, desc);
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().flatten())
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let top = nice_ceiling(max);
    y_axis(&mut out, top, y_label, tick);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let n = x_labels.len();
    let x_at = |i: usize| {
        if n <= 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * i as f64 / (n - 1) as f64
        }
    };
    let y_at = |v: f64| TOP + plot_h - plot_h * (v.max(0.0).min(top) / top);
    let mut shown: Vec<usize> = vec![0, n / 2, n.saturating_sub(1)];
    shown.dedup();
    for &i in shown.iter().filter(|&&i| i < n) {
        let anchor = if n > 1 && i == 0 {
            "start"
        } else if n > 1 && i == n - 1 {
            "end"
        } else {
            "middle"
        };
        let _ = write!(
            out,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\" font-size=\"11\">{}</text>",
            x_at(i),
            TOP + plot_h + 16.0,
            esc(&x_labels[i])
        );
    }
    for (k, s) in series.iter().enumerate() {
        let (colour, dash) = STYLES[k % STYLES.len()];
        let _ = write!(out, "<g class=\"series\" data-series=\"{}\">", esc(&s.name));
        // The line, broken where a value is missing.
        let mut d = String::new();
        let mut pen_down = false;
        for (i, p) in s.points.iter().enumerate().take(n) {
            match p.filter(|v| v.is_finite()) {
                Some(v) => {
                    let _ = write!(
                        d,
                        "{}{:.1} {:.1} ",
                        if pen_down { "L" } else { "M" },
                        x_at(i),
                        y_at(v)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        if !d.is_empty() {
            let _ = write!(
                out,
                "<path d=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/>",
                d.trim_end()
            );
        }
        for (i, p) in s.points.iter().enumerate().take(n) {
            if let Some(v) = p.filter(|v| v.is_finite()) {
                let _ = write!(
                    out,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\" data-value=\"{}\"><title>{} {}: {}</title></circle>",
                    x_at(i),
                    y_at(v),
                    esc(&value(v)),
                    esc(&x_labels[i]),
                    esc(&s.name),
                    esc(&value(v))
                );
            }
        }
        out.push_str("</g>");
    }
    // The legend, top right, one line per series with its colour and dash.
    for (k, s) in series.iter().enumerate() {
        let (colour, dash) = STYLES[k % STYLES.len()];
        let y = TOP + 8.0 + 16.0 * k as f64;
        let x = W - RIGHT - 150.0;
        let _ = write!(
            out,
            "<g class=\"legend\"><line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text></g>",
            x + 24.0,
            x + 30.0,
            y + 4.0,
            esc(&s.name)
        );
    }
    x_label(&mut out, x_label_text);
    out.push_str("</svg>");
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn num(v: f64) -> String {
        format!("{v:.1}")
    }

    #[test]
    fn ceilings_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(f64::NAN), 1.0);
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(nice_ceiling(1.0), 1.0);
        assert_eq!(nice_ceiling(1.2), 2.0);
        assert_eq!(nice_ceiling(2.2), 2.5);
        assert_eq!(nice_ceiling(47.0), 50.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
        assert_eq!(nice_ceiling(101.0), 200.0);
        assert_eq!(nice_ceiling(1_234_567.0), 2_000_000.0);
    }

    #[test]
    fn bars_are_as_tall_as_their_values_and_say_them() {
        let bars = [
            Bar {
                label: "current".into(),
                value: 100,
                text: "$1.00".into(),
            },
            Bar {
                label: "1-30".into(),
                value: 50,
                text: "$0.50".into(),
            },
            Bar {
                label: "<90+>".into(),
                value: 0,
                text: "$0.00".into(),
            },
        ];
        let svg = bar_chart(
            "aging",
            "Aging & more",
            "desc",
            "bucket",
            "amount",
            &bars,
            &num,
        );
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains("<title id=\"aging-title\">Aging &amp; more</title>"));
        assert_eq!(svg.matches("<rect ").count(), 3);
        // Plot height 192: the 100 bar fills it, the 50 bar half of it.
        assert!(svg.contains("height=\"192.0\" fill"), "{svg}");
        assert!(svg.contains("height=\"96.0\" fill"), "{svg}");
        assert!(svg.contains("<title>1-30: $0.50</title>"));
        assert!(svg.contains("&lt;90+&gt;") && !svg.contains("<90+>"));
        assert!(!svg.contains("style="), "the CSP refuses inline styles");
        // Axis name and ticks 0 .. 100.
        assert!(svg.contains(">amount</text>") && svg.contains(">100.0</text>"));
    }

    #[test]
    fn lines_break_where_a_value_is_missing_and_points_say_their_values() {
        let x: Vec<String> = ["d1", "d2", "d3", "d4"].map(String::from).to_vec();
        let series = [
            Series {
                name: "DSO".into(),
                points: vec![Some(10.0), Some(20.0), None, Some(40.0)],
            },
            Series {
                name: "CEI".into(),
                points: vec![None, None, None, None],
            },
        ];
        let svg = line_chart("t", "Trend", "d", "date", "days", &x, &series, &num, &num);
        // Two pieces: M..L for d1-d2, then a new M for d4.
        assert_eq!(svg.matches("<path ").count(), 1, "{svg}");
        let d = svg
            .split("<path d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert_eq!(d.matches('L').count(), 1, "{d}");
        assert_eq!(svg.matches("<circle ").count(), 3);
        assert!(svg.contains("<title>d4 DSO: 40.0</title>"));
        assert!(
            svg.contains("data-series=\"CEI\""),
            "an empty series still has a legend"
        );
        assert!(
            svg.contains("stroke-dasharray=\"6 3\""),
            "series 2 is dashed"
        );
        // The top is 50: the 40 point sits at 4/5 of the plot height.
        assert!(svg.contains("cy=\"54.4\""), "{svg}");
        assert!(svg.contains(">d1</text>") && svg.contains(">d4</text>"));
    }

    #[test]
    fn one_point_is_centred_and_nothing_is_unescaped() {
        let svg = line_chart(
            "x\"y",
            "<script>",
            "&",
            "date",
            "days",
            &["2026-01-01".to_string()],
            &[Series {
                name: "a<b".into(),
                points: vec![Some(5.0)],
            }],
            &num,
            &num,
        );
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;"));
        assert!(svg.contains("id=\"x&quot;y\""));
        assert!(svg.contains("cx=\"350.0\""), "{svg}");
    }
}
