//! The strings a session holds for itself (its user's key and ids, name,
//! e-mail, the ID token's `sid` and `login_hint`, the CSRF token), one after
//! the other in one heap block. Each string on its own would cost a pointer,
//! a length and a capacity in place plus an allocation (a 16-byte header
//! and rounding) of its own: with 100,000 cached sessions, more than the
//! strings themselves (issue 13's "≤ 1 KiB per session").

/// Which string. The order is the order in the block.
#[derive(Clone, Copy, Debug)]
pub(super) enum Field {
    UserKey,
    Oid,
    Sub,
    Name,
    Email,
    Sid,
    LoginHint,
    Csrf,
}

const FIELDS: usize = 8;
// One presence bit per field in a `u8`.
const _: () = assert!(FIELDS <= u8::BITS as usize);

#[derive(Clone, PartialEq, Eq)]
pub(super) struct Texts {
    block: Box<str>,
    /// Where each field ends in `block` (it starts where the previous ends).
    ends: [u32; FIELDS],
    /// Bit `i` set: field `i` is present (an absent one is empty in `block`).
    present: u8,
}

impl Texts {
    /// `values[i]` is the value of the field numbered `i` in [`Field`].
    /// None if the strings do not fit in 4 GiB together (nothing real
    /// comes close: they come from one ID token).
    pub(super) fn new(values: [Option<&str>; FIELDS]) -> Option<Self> {
        let mut block = String::with_capacity(values.iter().flatten().map(|v| v.len()).sum());
        let mut ends = [0u32; FIELDS];
        let mut present = 0u8;
        for (i, value) in values.iter().enumerate() {
            if let Some(v) = value {
                block.push_str(v);
                present |= 1 << i;
            }
            ends[i] = u32::try_from(block.len()).ok()?;
        }
        Some(Texts {
            block: block.into_boxed_str(),
            ends,
            present,
        })
    }

    pub(super) fn get(&self, field: Field) -> Option<&str> {
        let i = field as usize;
        if self.present & (1 << i) == 0 {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        // Always in range and on char boundaries (see `new`).
        self.block.get(start..self.ends[i] as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_field_reads_back_as_given() {
        let values = [
            Some("aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa:o1"),
            None,
            Some("sub"),
            Some("Zoë Ångström"),
            Some(""),
            None,
            Some("hint"),
            Some("csrf"),
        ];
        let t = Texts::new(values).unwrap();
        let fields = [
            Field::UserKey,
            Field::Oid,
            Field::Sub,
            Field::Name,
            Field::Email,
            Field::Sid,
            Field::LoginHint,
            Field::Csrf,
        ];
        for (f, v) in fields.into_iter().zip(values) {
            assert_eq!(t.get(f), v, "{f:?}");
        }
        // Present but empty is not absent.
        assert_eq!(t.get(Field::Email), Some(""));
        assert_eq!(
            &*t.block,
            "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa:o1subZoë Ångströmhintcsrf"
        );
        let none = Texts::new([None; FIELDS]).unwrap();
        assert!(none.block.is_empty() && none.get(Field::Csrf).is_none());
    }
}
