//! Text as the content rules read it.
//!
//! A draft's spelling is not its meaning: `ar​rest` with a zero-width space, `law­suit` with
//! a soft hyphen, `аrrest` with a Cyrillic `а`, or fullwidth `ａｒｒｅｓｔ` all read as
//! "arrest". Before any content rule runs, [`normalize`] removes what a reader cannot see
//! (format characters, controls, default-ignorable code points), applies Unicode NFKC
//! (fullwidth and styled letters, ligatures, no-break spaces become their plain forms),
//! drops combining marks stacked on a plain Latin letter or digit (strike-through and
//! other overlays, which NFKC cannot compose away), and folds every remaining non-ASCII
//! character that UTS #39 lists as confusable with an ASCII character to that character.
//! Letters that are no look-alike of ASCII (é, ñ, ç, ß, Cyrillic words) are kept as they
//! are, so French or Spanish text reads exactly as written.
//!
//! [`invisible_chars`] finds the characters a reader cannot see; the engine refuses drafts
//! that contain any (`engine.invisible-characters`). The normalised text is only ever
//! matched against; what is sent is the draft as written.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::OnceLock;

use unicode_general_category::{GeneralCategory, get_general_category};
use unicode_normalization::UnicodeNormalization;

/// Whether a reader cannot see `c`: a control character other than tab, line feed and
/// carriage return (General Category Cc), a format character (Cf: zero-width space and
/// joiners, soft hyphen, byte-order mark, bidirectional controls, tags …), or another
/// default-ignorable code point (combining grapheme joiner, Hangul fillers, variation
/// selectors).
pub fn is_invisible(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_control() && !matches!(c, '\t' | '\n' | '\r');
    }
    match get_general_category(c) {
        GeneralCategory::Control | GeneralCategory::Format => true,
        _ => is_default_ignorable(c),
    }
}

/// UTS #39's skeleton drops exactly the default-ignorable code points (after NFD, which
/// leaves them as they are), so a character whose skeleton is empty is one.
fn is_default_ignorable(c: char) -> bool {
    let mut buf = [0_u8; 4];
    unicode_security::skeleton(c.encode_utf8(&mut buf))
        .next()
        .is_none()
}

/// Text that needs no normalisation: ASCII without control characters other than tab,
/// line feed and carriage return.
fn is_plain(text: &str) -> bool {
    // In blocks without an early exit inside, which the compiler vectorises.
    text.as_bytes().chunks(64).all(|block| {
        block.iter().fold(true, |ok, &b| {
            ok & (matches!(b, 0x20..=0x7e) | (b == b'\t') | (b == b'\n') | (b == b'\r'))
        })
    })
}

/// Every invisible character in `text` with its position (in characters, from 0).
pub fn invisible_chars(text: &str) -> Vec<(usize, char)> {
    if is_plain(text) {
        return Vec::new();
    }
    text.chars()
        .enumerate()
        .filter(|(_, c)| is_invisible(*c))
        .collect()
}

/// ASCII characters by their UTS #39 skeleton (`l`, `I`, `1` and `|` share one).
fn ascii_by_skeleton() -> &'static HashMap<String, Vec<char>> {
    static MAP: OnceLock<HashMap<String, Vec<char>>> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut map: HashMap<String, Vec<char>> = HashMap::new();
        for c in (0x21_u8..0x7f).map(char::from) {
            let mut buf = [0_u8; 4];
            let skeleton: String = unicode_security::skeleton(c.encode_utf8(&mut buf)).collect();
            map.entry(skeleton).or_default().push(c);
        }
        map
    })
}

/// The ASCII text a non-ASCII character is confusable with, if any: the ASCII character
/// sharing its skeleton (of the same case when there is a choice), else the skeleton
/// itself when that is ASCII.
fn fold(c: char) -> Option<Cow<'static, str>> {
    let mut buf = [0_u8; 4];
    let skeleton: String = unicode_security::skeleton(c.encode_utf8(&mut buf)).collect();
    if skeleton.is_empty() || !skeleton.is_ascii() {
        return None;
    }
    let Some(candidates) = ascii_by_skeleton().get(&skeleton) else {
        return Some(Cow::Owned(skeleton));
    };
    let pick = |f: fn(&char) -> bool| candidates.iter().copied().find(f);
    let chosen = if c.is_uppercase() {
        pick(char::is_ascii_uppercase)
    } else if c.is_lowercase() {
        pick(char::is_ascii_lowercase)
    } else if c.is_numeric() {
        pick(char::is_ascii_digit)
    } else {
        None
    };
    chosen
        .or_else(|| candidates.first().copied())
        .map(|a| Cow::Owned(a.to_string()))
}

/// `text` as the content rules read it (see the module docs). Plain ASCII is returned as
/// it is, without copying.
pub fn normalize(text: &str) -> Cow<'_, str> {
    if is_plain(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    // Whether the last character written was an ASCII letter or digit.
    let mut after_alnum = false;
    for c in text.chars().filter(|c| !is_invisible(*c)).nfkc() {
        if c.is_ascii() {
            out.push(c);
            after_alnum = c.is_ascii_alphanumeric();
            continue;
        }
        if is_invisible(c) {
            continue;
        }
        let category = get_general_category(c);
        if after_alnum
            && matches!(
                category,
                GeneralCategory::NonspacingMark | GeneralCategory::EnclosingMark
            )
        {
            continue;
        }
        match fold(c) {
            Some(ascii) => {
                out.push_str(&ascii);
                after_alnum = ascii
                    .chars()
                    .last()
                    .is_some_and(|l| l.is_ascii_alphanumeric());
            }
            None => {
                out.push(c);
                after_alnum = false;
            }
        }
    }
    Cow::Owned(out)
}

/// The sentences of `text` as byte ranges: split after `.`, `!` or `?` followed by white
/// space (so `$300.50` and `INV.2` stay whole), and at line breaks.
///
/// Every character that can end a sentence is ASCII, and an ASCII byte in UTF-8 is always
/// that character (never part of another's encoding), so the text is walked byte by byte
/// and only the character after a stop is decoded.
pub fn sentences(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in text.as_bytes().iter().enumerate() {
        // (end of this sentence, start of the next)
        let (end, next) = match b {
            b'\n' | b'\r' => (i, i + 1),
            b'.' | b'!' | b'?' => match text.get(i + 1..).and_then(|r| r.chars().next()) {
                Some(n) if !n.is_whitespace() => continue,
                _ => (i + 1, i + 1),
            },
            _ => continue,
        };
        if !text[start..end].trim().is_empty() {
            out.push(start..end);
        }
        start = next;
    }
    if !text[start..].trim().is_empty() {
        out.push(start..text.len());
    }
    out
}

/// Whether `text` names `id` as a whole token (case-insensitive): `INV-2` is named in
/// "INV-2." and "(inv-2)", not in "INV-20" or "XINV-2".
pub fn names_id(text: &str, id: &str) -> bool {
    if id.is_empty() || text.len() < id.len() {
        return false;
    }
    let joins = |c: char| c.is_alphanumeric() || matches!(c, '-' | '_' | '/');
    let bytes = text.as_bytes();
    let id_bytes = id.as_bytes();
    let mut from = 0;
    while from + id_bytes.len() <= bytes.len() {
        let Some(pos) = bytes[from..]
            .windows(id_bytes.len())
            .position(|w| w.eq_ignore_ascii_case(id_bytes))
        else {
            return false;
        };
        let at = from + pos;
        let end = at + id_bytes.len();
        let before = text.get(..at).and_then(|t| t.chars().next_back());
        let after = text.get(end..).and_then(|t| t.chars().next());
        if !before.is_some_and(joins) && !after.is_some_and(joins) {
            return true;
        }
        from = at + 1;
    }
    false
}

/// At most `max` characters of `text`, trimmed, with an ellipsis when cut.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    let t = text.trim();
    match t.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_string(),
    }
}

/// The month a name or abbreviation of at least three letters stands for (`jan`, `March`,
/// `Sept`): 1..=12. Shared by the date readers of the consistency and contact rules.
pub(crate) fn month_number(name: &str) -> Option<u32> {
    let m = name.get(..3)?.to_ascii_lowercase();
    let n = match m.as_str() {
        "jan" => 1,
        "feb" => 2,
        "mar" => 3,
        "apr" => 4,
        "may" => 5,
        "jun" => 6,
        "jul" => 7,
        "aug" => 8,
        "sep" => 9,
        "oct" => 10,
        "nov" => 11,
        "dec" => 12,
        _ => return None,
    };
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ascii_is_borrowed() {
        assert!(matches!(normalize("Pay by Friday."), Cow::Borrowed(_)));
    }

    #[test]
    fn invisible_characters_are_removed_and_found() {
        for (text, c) in [
            ("ar\u{200B}rest", '\u{200B}'),
            ("law\u{00AD}suit", '\u{00AD}'),
            ("ja\u{200D}il", '\u{200D}'),
            ("pri\u{200C}son", '\u{200C}'),
            ("\u{FEFF}arrest", '\u{FEFF}'),
            ("ar\u{202E}rest", '\u{202E}'),
            ("ar\u{2066}rest", '\u{2066}'),
            ("ar\u{034F}rest", '\u{034F}'),
            ("ar\u{FE0F}rest", '\u{FE0F}'),
            ("ar\u{3164}rest", '\u{3164}'),
            ("ar\u{E0061}rest", '\u{E0061}'),
            ("ar\u{0007}rest", '\u{0007}'),
        ] {
            let without: String = text.chars().filter(|x| *x != c).collect();
            assert_eq!(normalize(text), without, "{text:?}");
            assert_eq!(invisible_chars(text).len(), 1, "{text:?}");
            assert_eq!(invisible_chars(text)[0].1, c);
        }
        assert!(invisible_chars("Tab\tand\r\nnew lines").is_empty());
    }

    #[test]
    fn homoglyphs_and_fullwidth_fold_to_latin() {
        assert_eq!(normalize("\u{0430}rr\u{0435}st"), "arrest"); // Cyrillic а, е
        assert_eq!(normalize("pris\u{043E}n"), "prison"); // Cyrillic о
        assert_eq!(normalize("idi\u{03BF}t"), "idiot"); // Greek ο
        assert_eq!(
            normalize("\u{FF41}\u{FF52}\u{FF52}\u{FF45}\u{FF53}\u{FF54}"),
            "arrest"
        );
        assert_eq!(
            normalize("\u{FF2C}\u{FF21}\u{FF37}\u{FF33}\u{FF35}\u{FF29}\u{FF34}"),
            "LAWSUIT"
        );
        assert_eq!(normalize("\u{0399}D\u{0399}OT"), "IDIOT"); // Greek capital iota
        assert_eq!(
            normalize("\u{FF04}\u{FF11},\u{FF15}\u{FF10}\u{FF10}"),
            "$1,500"
        );
        assert_eq!(normalize("a\u{0336}r\u{0336}rest"), "arrest"); // strike-through overlay
        assert_eq!(normalize("it\u{2019}s"), "it's");
    }

    #[test]
    fn accented_latin_is_kept_as_written() {
        for text in [
            "Señor García, ¿podría pagar el saldo pendiente? Gracias, a pronto.",
            "Madame Lefèvre, nous espérons que vous allez bien. À bientôt, garçon déçu.",
            "Über größere Beträge",
        ] {
            let n = normalize(text);
            for c in ['ñ', 'í', 'é', 'è', 'ç', 'à', 'ô', 'ü', 'ö', 'ß', 'ä'] {
                assert_eq!(
                    text.matches(c).count(),
                    n.matches(c).count(),
                    "{c} in {text:?} became {n:?}"
                );
            }
        }
    }

    #[test]
    fn sentences_split_at_stops_not_inside_amounts() {
        let t = "Your balance is $300.50. Please pay INV.2 now!\nThanks";
        let s: Vec<&str> = sentences(t).into_iter().map(|r| &t[r]).collect();
        assert_eq!(
            s,
            vec![
                "Your balance is $300.50.",
                " Please pay INV.2 now!",
                "Thanks"
            ]
        );
    }

    /// The character-by-character split [`sentences`] replaced, kept as its reference.
    fn sentences_by_char(text: &str) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            let cut = match c {
                '\n' | '\r' => Some((i, i + 1)),
                '.' | '!' | '?' => match chars.peek() {
                    None => Some((i + 1, i + 1)),
                    Some((_, n)) if n.is_whitespace() => Some((i + 1, i + 1)),
                    _ => None,
                },
                _ => None,
            };
            if let Some((end, next)) = cut {
                if !text[start..end].trim().is_empty() {
                    out.push(start..end);
                }
                start = next;
            }
        }
        if !text[start..].trim().is_empty() {
            out.push(start..text.len());
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn sentences_split_as_the_character_walk_did(
            text in "([a-zé€ ]{0,6}[.!?\n\r\u{a0}\u{2003}\u{3000} ,0-9]{0,3}){0,40}"
        ) {
            proptest::prop_assert_eq!(sentences(&text), sentences_by_char(&text));
        }
    }

    #[test]
    fn ids_are_named_as_whole_tokens() {
        assert!(names_id("About INV-2.", "INV-2"));
        assert!(names_id("(inv-2)", "INV-2"));
        assert!(!names_id("About INV-20.", "INV-2"));
        assert!(!names_id("XINV-2", "INV-2"));
        assert!(names_id("INV-20 and INV-2", "INV-2"));
    }
}
