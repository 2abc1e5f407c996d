//! The TOTP enrolment's QR code: the `otpauth://` URI as an SVG an authenticator app's
//! camera reads. The matrix comes from Nayuki's QR Code generator (`qrcodegen`, feature
//! `qr`); what is written here is only its SVG: one path of unit squares, a four-module
//! quiet zone (ISO/IEC 18004 asks for it), `crispEdges`, and an accessible name. No script,
//! no external reference: the SVG can be put inline in a page under a strict CSP.
//!
//! Without the `qr` feature (the edge build) there is no QR code: [`svg`] answers `None`,
//! and the user types the secret, or taps the URI, instead.

/// Modules of white around the code.
#[cfg(feature = "qr")]
const QUIET_ZONE: i32 = 4;

/// `text` as an SVG QR code (error correction M: a scratched screen still reads); `None`
/// when it does not fit a QR code, or without the `qr` feature.
#[cfg(feature = "qr")]
pub fn svg(text: &str) -> Option<String> {
    use std::fmt::Write as _;

    let code = qrcodegen::QrCode::encode_text(text, qrcodegen::QrCodeEcc::Medium).ok()?;
    let side = code.size() + 2 * QUIET_ZONE;
    let mut path = String::new();
    for y in 0..code.size() {
        for x in 0..code.size() {
            if code.get_module(x, y) {
                // Writing to a String cannot fail.
                let _ = write!(path, "M{},{}h1v1h-1z", x + QUIET_ZONE, y + QUIET_ZONE);
            }
        }
    }
    Some(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" \
         shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"QR code for your authenticator app\">\
         <rect width=\"{side}\" height=\"{side}\" fill=\"#fff\"/>\
         <path fill=\"#000\" d=\"{path}\"/></svg>"
    ))
}

/// Without the `qr` feature: no QR code.
#[cfg(not(feature = "qr"))]
pub fn svg(_text: &str) -> Option<String> {
    None
}

#[cfg(all(test, feature = "qr"))]
mod tests {
    use super::*;

    #[test]
    fn an_otpauth_uri_becomes_a_self_contained_svg() {
        let uri = "otpauth://totp/claimd:ada%40example%2Eorg?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=claimd&algorithm=SHA1&digits=6&period=30";
        let svg = svg(uri).unwrap();

        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{svg}"
        );
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains("aria-label="));
        for absent in ["<script", "href", "<?xml", "url("] {
            assert!(!svg.contains(absent), "{absent}");
        }
        // A version-6 code (41 modules) for this length at level M, plus the quiet zone.
        let code = qrcodegen::QrCode::encode_text(uri, qrcodegen::QrCodeEcc::Medium).unwrap();
        let side = code.size() + 8;
        assert!(
            svg.contains(&format!("viewBox=\"0 0 {side} {side}\"")),
            "{svg}"
        );
        let dark = (0..code.size())
            .flat_map(|y| (0..code.size()).map(move |x| (x, y)))
            .filter(|(x, y)| code.get_module(*x, *y))
            .count();
        assert_eq!(svg.matches('z').count(), dark, "one square per dark module");
    }

    #[test]
    fn text_too_long_for_any_qr_code_has_none() {
        assert!(svg(&"x".repeat(5000)).is_none());
    }
}
