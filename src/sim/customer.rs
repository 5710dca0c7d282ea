//! Simulated customers: segment, tenure, annual value and how active they are.
//!
//! Shares and medians are plausible for a European retailer selling to consumers, small
//! businesses and enterprises; they are not fitted to any real data set. Each customer is
//! drawn from its own random stream, so customer 42 looks the same whatever the population size.

use super::rng::Rng;
use crate::domain::time::civil_from_days;
use crate::domain::time::DAY_MS;
use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Segment {
    Consumer,
    Smb,
    Enterprise,
}

impl Segment {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Segment::Consumer => "consumer",
            Segment::Smb => "smb",
            Segment::Enterprise => "enterprise",
        }
    }

    /// Orders placed per customer per day (before the customer's own activity factor).
    pub(crate) fn orders_per_day(self) -> f64 {
        match self {
            Segment::Consumer => 0.9,
            Segment::Smb => 2.0,
            Segment::Enterprise => 5.5,
        }
    }

    /// Service contacts per day that are not about a failure (questions, account changes).
    pub(crate) fn questions_per_day(self) -> f64 {
        match self {
            Segment::Consumer => 0.3,
            Segment::Smb => 0.6,
            Segment::Enterprise => 1.5,
        }
    }

    /// Account invoices per day (subscriptions, consolidated billing): businesses only.
    pub(crate) fn account_invoices_per_day(self) -> f64 {
        match self {
            Segment::Consumer => 0.0,
            Segment::Smb => 0.1,
            Segment::Enterprise => 0.4,
        }
    }

    /// An order value in cents: log-normal, larger for businesses.
    pub(crate) fn order_cents(self, rng: &mut Rng) -> u32 {
        let (median, sigma, cap) = match self {
            Segment::Consumer => (55.0, 0.75, 3_000.0),
            Segment::Smb => (380.0, 0.9, 25_000.0),
            Segment::Enterprise => (2_600.0, 1.0, 250_000.0),
        };
        let eur = rng.log_normal(median, sigma).clamp(2.0, cap);
        // Shop prices end in .x9 or .x0 more often than not; the detail only adds realism.
        let cents = (eur * 100.0).round() as u32;
        if rng.chance(0.6) {
            cents - cents % 10 + 9
        } else {
            cents - cents % 10
        }
    }

    /// Payment methods with their weights.
    pub(crate) fn payment_methods(self) -> &'static [f64] {
        // card, paypal, sepa_debit, invoice, bank_transfer
        match self {
            Segment::Consumer => &[0.55, 0.3, 0.1, 0.05, 0.0],
            Segment::Smb => &[0.35, 0.1, 0.25, 0.2, 0.1],
            Segment::Enterprise => &[0.05, 0.0, 0.25, 0.45, 0.25],
        }
    }

    /// Storefront weights: web, app, phone, sales_rep, edi.
    pub(crate) fn storefronts(self) -> &'static [f64] {
        match self {
            Segment::Consumer => &[0.6, 0.35, 0.05, 0.0, 0.0],
            Segment::Smb => &[0.7, 0.1, 0.1, 0.1, 0.0],
            Segment::Enterprise => &[0.3, 0.0, 0.1, 0.3, 0.3],
        }
    }
}

/// One customer, with its strings formatted once (events borrow them).
#[derive(Clone, Debug)]
pub(crate) struct Customer {
    /// `c-000042`
    pub id: Box<str>,
    /// Relationship start as `YYYY-MM-DD`.
    pub since: Box<str>,
    pub segment: Segment,
    /// Annual sales to this customer, whole euros.
    pub annual_value: f64,
    /// Multiplies the segment's rates: a few customers are far busier than most.
    pub activity: f64,
    /// How readily this customer contacts service after a failure (0.5 to 1.5).
    pub effort: f64,
}

impl Customer {
    /// Customer number `index` (0-based; ids start at `c-000001`), known as of `start_ms`.
    pub(crate) fn generate(index: usize, start_ms: i64, rng: &mut Rng) -> Customer {
        let segment = match rng.weighted(&[0.75, 0.2, 0.05]) {
            0 => Segment::Consumer,
            1 => Segment::Smb,
            _ => Segment::Enterprise,
        };
        // Tenure buckets: brand new, this year, a few years, many years. Businesses tend to stay.
        let buckets: [(i64, i64); 4] = [(0, 30), (30, 365), (365, 5 * 365), (5 * 365, 25 * 365)];
        let weights: &[f64] = match segment {
            Segment::Consumer => &[0.08, 0.2, 0.37, 0.35],
            Segment::Smb => &[0.05, 0.15, 0.4, 0.4],
            Segment::Enterprise => &[0.02, 0.08, 0.35, 0.55],
        };
        let (lo, hi) = buckets[rng.weighted(weights)];
        let tenure_days = rng.between(lo, hi);
        let since_day = start_ms.div_euclid(DAY_MS) - tenure_days;
        let (y, m, d) = civil_from_days(since_day);
        let mut since = String::with_capacity(10);
        let _ = write!(since, "{y:04}-{m:02}-{d:02}");
        let (median, sigma) = match segment {
            Segment::Consumer => (420.0, 0.8),
            Segment::Smb => (7_500.0, 0.9),
            Segment::Enterprise => (85_000.0, 1.0),
        };
        let annual_value = rng
            .log_normal(median, sigma)
            .clamp(20.0, 5_000_000.0)
            .round();
        let activity = rng.log_normal(0.8, 0.6).min(6.0);
        let effort = 0.5 + rng.f64();
        Customer {
            id: format!("c-{:06}", index + 1).into_boxed_str(),
            since: since.into_boxed_str(),
            segment,
            annual_value,
            activity,
            effort,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventTime;

    #[test]
    fn customers_are_mixed_and_well_formed() {
        let start = EventTime::parse("2026-11-21T00:00:00Z")
            .map(|t| t.0)
            .unwrap_or_default();
        let cs: Vec<Customer> = (0..3000)
            .map(|i| Customer::generate(i, start, &mut Rng::stream(1, 2, i as u64)))
            .collect();
        assert_eq!(&*cs[41].id, "c-000042");
        let share =
            |s: Segment| cs.iter().filter(|c| c.segment == s).count() as f64 / cs.len() as f64;
        assert!((share(Segment::Consumer) - 0.75).abs() < 0.04);
        assert!(share(Segment::Enterprise) > 0.02);
        let mean = |s: Segment| {
            let v: Vec<f64> = cs
                .iter()
                .filter(|c| c.segment == s)
                .map(|c| c.annual_value)
                .collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        assert!(
            mean(Segment::Enterprise) > 5.0 * mean(Segment::Smb)
                && mean(Segment::Smb) > 5.0 * mean(Segment::Consumer)
        );
        let years: Vec<i64> = cs
            .iter()
            .filter_map(|c| c.since[..4].parse().ok())
            .collect();
        assert_eq!(years.len(), cs.len());
        assert!(years.contains(&2026) && years.iter().any(|y| *y < 2010));
        assert!(cs.iter().all(|c| EventTime::parse(&c.since)
            .map(|t| t.0 <= start)
            .unwrap_or(false)));
    }
}
