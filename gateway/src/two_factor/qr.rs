//! The enrolment QR code, drawn by the gateway as inline SVG: the secret
//! never leaves for a QR service.

/// The SVG element (no XML declaration, so it can sit inside HTML).
pub fn svg(data: &str) -> String {
    match qrcode::QrCode::new(data.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build();
            match svg.find("<svg") {
                Some(i) => svg[i..].to_string(),
                None => svg,
            }
        }
        // Only data past the largest QR version fails; the key is shown as
        // text beside it anyway.
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_an_svg_element() {
        let s = super::svg("otpauth://totp/x:y?secret=JBSWY3DPEHPK3PXP");
        assert!(s.starts_with("<svg"), "{}", &s[..40]);
        assert!(s.contains("<path") || s.contains("<rect"));
        assert_eq!(super::svg(&"x".repeat(8000)), "");
    }
}
