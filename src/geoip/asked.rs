//! A request's client's country, as its conditions, values and log line
//! read it: looked up at the first of them that asks, and kept for the
//! others, so that a deny rule, a route, a header value and the log
//! naming it walk the database's tree once between them.

use super::{Country, GeoIp};
use std::cell::Cell;
use std::net::IpAddr;

/// The country a request's client was found in, once looked up: held by
/// the connection and forgotten as each request names its client.
#[derive(Debug, Default)]
pub struct KeptCountry(Cell<Option<Option<Country>>>);

impl KeptCountry {
    /// For the next request: its client may be another (one a trusted
    /// proxy names), and a reload may have brought another database.
    pub fn forget(&mut self) {
        *self.0.get_mut() = None;
    }
}

/// Where a request's client's country comes from: `geoip_database`, and
/// what was found in it for this request so far.
#[derive(Clone, Copy, Default)]
pub struct Geo<'a> {
    db: Option<&'a GeoIp>,
    kept: Option<&'a KeptCountry>,
}

impl<'a> Geo<'a> {
    /// `db`'s answers, kept in `kept` for the rest of the request.
    pub fn kept_in(db: Option<&'a GeoIp>, kept: &'a KeptCountry) -> Geo<'a> {
        Geo {
            db,
            kept: Some(kept),
        }
    }

    /// `db`'s answers, looked up at each ask.
    #[cfg(test)]
    pub fn each_time(db: Option<&'a GeoIp>) -> Geo<'a> {
        Geo { db, kept: None }
    }

    /// The client's country, when the database knows it: `client` is the
    /// request's, the same at each ask.
    pub fn country(&self, client: IpAddr) -> Option<Country> {
        let kept = self.kept.and_then(|kept| kept.0.get());
        if let Some(country) = kept {
            return country;
        }
        let country = self.db.and_then(|db| db.country(client));
        if let Some(kept) = self.kept {
            kept.0.set(Some(country));
        }
        country
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geoip::writer::{country_record, Writer};

    fn database() -> GeoIp {
        let mut w = Writer::new(4, 24);
        let at = w.data(&country_record(Some("DE"), None));
        w.insert("10.0.0.0/8", at);
        GeoIp::parse(w.finish("GeoLite2-Country")).unwrap()
    }

    #[test]
    fn a_country_is_looked_up_once_until_forgotten() {
        let db = database();
        let mut kept = KeptCountry::default();
        let de = Country::parse("DE");
        assert_eq!(
            Geo::kept_in(Some(&db), &kept).country([10, 1, 2, 3].into()),
            de
        );
        // Kept: another address in the same request is not asked again.
        assert_eq!(
            Geo::kept_in(Some(&db), &kept).country([192, 0, 2, 1].into()),
            de
        );
        kept.forget();
        assert_eq!(
            Geo::kept_in(Some(&db), &kept).country([192, 0, 2, 1].into()),
            None
        );
        assert_eq!(Geo::each_time(Some(&db)).country([10, 9, 9, 9].into()), de);
        assert_eq!(Geo::default().country([10, 9, 9, 9].into()), None);
    }
}
