//! The variance mode: for each answer, a draw from a seed of the forms AWS's protocols and documents
//! allow for the same content (docs/emulator.md, "Variance": each form with its source). Only the
//! choice lives here, as plain data: the wire layer renders a form, the server applies it. The draw is
//! a pure function of (seed, operation, how many answers that operation gave before), so a seed
//! repeats a run's forms whatever else happens in between.

use super::world::ClaimStyle;

/// How an ISO 8601 date-time string is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateForm {
    /// `2026-01-01T00:00:00Z`
    Z,
    /// `2026-01-01T00:00:00.250Z`: fractional seconds, this many milliseconds past the second (the
    /// instant is that much later).
    FractionZ(u16),
    /// `2026-01-01T05:30:00+05:30`: the same instant at a UTC offset of this many minutes.
    Offset(i16),
}

/// The forms of the timestamp shapes of the AWS models (STS `Expiration`, the container credential
/// endpoints' `Expiration`): Smithy's `date-time` format, which has no UTC offset and optional
/// fractional seconds.
pub const MODEL_DATE_FORMS: &[DateForm] = &[DateForm::Z, DateForm::FractionZ(0), DateForm::FractionZ(250)];

/// The forms of License Manager's `ISO8601DateTime` strings (`Validity.Begin`/`End`, `IssuedAt`,
/// `Expiration`, `CreateTime`) the variance draws from: the model's pattern allows `Z` or a `±hh:mm`
/// offset, with or without fractional seconds.
pub const LICENSE_DATE_FORMS: &[DateForm] = &[
    DateForm::Z,
    DateForm::FractionZ(0),
    DateForm::FractionZ(125),
    DateForm::Offset(0),
    DateForm::Offset(330),
    DateForm::Offset(-600),
];

/// The unit and form of the RegisterUsage JWT's `iat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IatForm {
    Seconds,
    Millis,
    /// Seconds with this many thousandths as a fraction.
    SecondsFraction(u16),
    /// Milliseconds with this many thousandths of a millisecond as a fraction.
    MillisFraction(u16),
}

/// How an awsJson error names its code (Smithy's awsJson1_1 protocol: the code is read from the
/// `X-Amzn-ErrorType` header when present, else from `__type`, and anything before a `#` or after a
/// `:` is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorTypeForm {
    /// `"__type": "Code"`
    Plain,
    /// `"__type": "com.amazonaws.<service>#Code"`
    Namespaced,
    /// `X-Amzn-ErrorType: Code:http://internal.amazon.com/coral/<service>/` plus the plain `__type`.
    Header,
}

/// The forms one answer takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forms {
    /// Epoch-seconds timestamps of awsJson (`PublicKeyRotationTimestamp`, `Timestamp`): an integer
    /// or a number with this many milliseconds as a fraction.
    pub epoch_fraction: Option<u16>,
    pub model_date: DateForm,
    pub license_date: DateForm,
    pub claims: ClaimStyle,
    pub iat: IatForm,
    pub error_type: ErrorTypeForm,
    /// Add members the client does not know to every JSON object that is a whole answer or a list item.
    pub extra_members: bool,
    /// Write JSON members in an order drawn from this value (0: as built).
    pub member_order: u64,
    /// Pretty-printed JSON instead of compact.
    pub pretty: bool,
    /// `Transfer-Encoding: chunked` instead of `Content-Length`.
    pub chunked: bool,
    /// `Connection: close` after this answer instead of keep-alive.
    pub close: bool,
}

/// One step of splitmix64: a good 64-bit mix of a counter, enough to pick forms.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a of the operation name, so each operation has a stream of its own.
fn name_hash(op: &str) -> u64 {
    op.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A stream of draws for one answer.
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> u64 {
        self.0 = mix(self.0);
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }
}

impl Forms {
    /// The forms of the `n`th answer (counting from 0) to `op` under `seed`.
    pub fn draw(seed: u64, op: &str, n: u64) -> Forms {
        let mut d = Draws(mix(seed ^ mix(name_hash(op) ^ mix(n))));
        let millis = |d: &mut Draws| u16::try_from(d.below(1000)).unwrap_or(0);
        Forms {
            epoch_fraction: if d.coin() { Some(millis(&mut d)) } else { None },
            model_date: d.pick(MODEL_DATE_FORMS),
            license_date: d.pick(LICENSE_DATE_FORMS),
            claims: if d.coin() { ClaimStyle::CamelCase } else { ClaimStyle::PascalCase },
            iat: match d.below(4) {
                0 => IatForm::Seconds,
                1 => IatForm::Millis,
                2 => IatForm::SecondsFraction(millis(&mut d)),
                _ => IatForm::MillisFraction(millis(&mut d)),
            },
            error_type: d.pick(&[ErrorTypeForm::Plain, ErrorTypeForm::Namespaced, ErrorTypeForm::Header]),
            extra_members: d.coin(),
            member_order: if d.coin() { d.next() | 1 } else { 0 },
            pretty: d.coin(),
            chunked: d.coin(),
            close: d.coin(),
        }
    }

    /// Whether a connection writes its header names in Title-Case instead of lower case: drawn once
    /// per connection, the `n`th under `seed`.
    pub fn title_case_headers(seed: u64, n: u64) -> bool {
        Draws(mix(seed ^ mix(name_hash("connection") ^ mix(n)))).coin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_repeats_its_forms_and_seeds_differ() {
        let a: Vec<Forms> = (0..20).map(|n| Forms::draw(7, "RegisterUsage", n)).collect();
        let b: Vec<Forms> = (0..20).map(|n| Forms::draw(7, "RegisterUsage", n)).collect();
        assert_eq!(a, b);
        let c: Vec<Forms> = (0..20).map(|n| Forms::draw(8, "RegisterUsage", n)).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn every_form_is_drawn_within_a_few_hundred_answers() {
        let all: Vec<Forms> = (0..400).map(|n| Forms::draw(1, "MeterUsage", n)).collect();
        assert!(
            all.iter().any(|f| f.claims == ClaimStyle::PascalCase)
                && all.iter().any(|f| f.claims == ClaimStyle::CamelCase)
        );
        let iat_kinds: Vec<u8> = all
            .iter()
            .map(|f| match f.iat {
                IatForm::Seconds => 0,
                IatForm::Millis => 1,
                IatForm::SecondsFraction(_) => 2,
                IatForm::MillisFraction(_) => 3,
            })
            .collect();
        for kind in 0..4 {
            assert!(iat_kinds.contains(&kind), "iat form {kind} never drawn");
        }
        for form in MODEL_DATE_FORMS {
            assert!(all.iter().any(|f| f.model_date == *form), "{form:?} never drawn");
        }
        assert!(all.iter().any(|f| f.chunked) && all.iter().any(|f| !f.chunked));
        assert!(all.iter().any(|f| f.close) && all.iter().any(|f| !f.close));
        assert!(all.iter().any(|f| f.error_type == ErrorTypeForm::Header));
        assert!((0..64).any(|n| Forms::title_case_headers(1, n)) && (0..64).any(|n| !Forms::title_case_headers(1, n)));
    }
}
