//! The `public_stats` view: beds and cases per medical area and for the prefecture, for
//! anyone.
//!
//! It names no one, and it withholds every count of people that is small enough to point
//! at someone, together with whatever would let such a count be worked out by
//! subtraction (see [`withheld`]).

use std::collections::{BTreeMap, BTreeSet};

use noroshi_domain::Violations;
use noroshi_domain::authz::Principal;
use noroshi_domain::values::{BedCategory, CaseStatus};
use noroshi_proto::v1 as pb;

use super::PublicStats;
use crate::View;
use crate::bed_board::{OCCUPANCY_DEFINITION, Totals};
use crate::runner::Projection;
use crate::views::live::whole;
use crate::views::{MinVersions, QueryError, Updates, ViewQuery, Views, at, min_versions, wire};

/// Beds of one category in one area. Counts of people (occupied, and what reveals it)
/// are `None` when withheld.
#[derive(Debug, Clone, PartialEq)]
struct CategoryStats {
    category: String,
    secured: u64,
    ready: u64,
    occupied: Option<u64>,
    available: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
struct StatusCount {
    status: String,
    /// `None` when withheld.
    count: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
struct AreaStats {
    /// `None` for the prefecture.
    medical_area: Option<String>,
    beds: Vec<CategoryStats>,
    /// Over every category; `None` when nothing is secured or the occupied beds over
    /// every category are withheld (the rate times the secured beds would give them).
    occupancy_rate: Option<f64>,
    cases: Vec<StatusCount>,
}

/// A count of people the statistics publish, or let be worked out: the occupied beds
/// over every category follow from the occupancy rate and the secured beds beside it.
/// Area `None` is the prefecture; category `None` is every category.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Count {
    Cases {
        status: String,
        area: Option<String>,
    },
    Occupied {
        category: Option<String>,
        area: Option<String>,
    },
}

/// A published total and the published counts it is the sum of.
#[derive(Debug)]
struct Sum<K> {
    total: K,
    parts: Vec<K>,
}

/// Which `counts` to withhold.
///
/// First every count from 1 up to `below`. Then, wherever exactly one of a sum's entries
/// (its total or one of its parts) is withheld, it could be worked out from the others,
/// so one more is withheld: the smallest positive part still shown, or else the total.
/// That repeats until every sum withholds none or at least two of its entries, the
/// usual rule for tables published with their totals.
///
/// Every sum is treated as exact, also where the total counts something no part shows
/// (cases of a health center without a medical area): that remainder is usually zero,
/// and not publishing it does not make it secret.
fn withheld<K: Ord + Clone>(counts: &BTreeMap<K, u64>, sums: &[Sum<K>], below: u64) -> BTreeSet<K> {
    let count = |key: &K| counts.get(key).copied().unwrap_or(0);
    let mut withheld: BTreeSet<K> = counts
        .iter()
        .filter(|&(_, &n)| n > 0 && n < below)
        .map(|(key, _)| key.clone())
        .collect();
    loop {
        let mut changed = false;
        for sum in sums {
            let hidden = sum
                .parts
                .iter()
                .chain([&sum.total])
                .filter(|key| withheld.contains(*key))
                .count();
            if hidden != 1 {
                continue;
            }
            let shown_positive = |key: &&K| !withheld.contains(*key) && count(key) > 0;
            let complement = sum
                .parts
                .iter()
                .filter(shown_positive)
                .min_by_key(|key| (count(key), *key))
                .or(Some(&sum.total).filter(shown_positive));
            if let Some(key) = complement {
                withheld.insert(key.clone());
                changed = true;
            }
        }
        if !changed {
            return withheld;
        }
    }
}

/// Sums beds per category and cases per status for one area.
#[derive(Debug, Default)]
struct AreaSums {
    beds: BTreeMap<String, Totals>,
    cases: BTreeMap<String, u64>,
}

impl AreaSums {
    fn occupied(&self) -> u64 {
        self.beds.values().map(|t| t.occupied).sum()
    }

    /// The counts of people this area publishes.
    fn counts(&self, area: &Option<String>) -> impl Iterator<Item = (Count, u64)> {
        let cases = self.cases.iter().map(move |(status, &n)| {
            let status = status.clone();
            let area = area.clone();
            (Count::Cases { status, area }, n)
        });
        let beds = self.beds.iter().map(move |(category, t)| {
            let category = Some(category.clone());
            let area = area.clone();
            (Count::Occupied { category, area }, t.occupied)
        });
        let all = Count::Occupied {
            category: None,
            area: area.clone(),
        };
        cases.chain(beds).chain([(all, self.occupied())])
    }

    /// The area's figures, with `withheld` counts as `None`.
    fn stats(&self, medical_area: Option<String>, withheld: &BTreeSet<Count>) -> AreaStats {
        let shown = |key: Count, n: u64| (!withheld.contains(&key)).then_some(n);
        let all = Totals {
            secured: self.beds.values().map(|t| t.secured).sum(),
            occupied: self.occupied(),
            ..Totals::default()
        };
        let beds = self
            .beds
            .iter()
            .map(|(category, t)| {
                let key = Count::Occupied {
                    category: Some(category.clone()),
                    area: medical_area.clone(),
                };
                let occupied = shown(key, t.occupied);
                CategoryStats {
                    category: category.clone(),
                    secured: t.secured,
                    ready: t.ready,
                    occupied,
                    available: occupied.map(|_| t.available),
                }
            })
            .collect();
        let over_all = Count::Occupied {
            category: None,
            area: medical_area.clone(),
        };
        let cases = self
            .cases
            .iter()
            .map(|(status, &n)| {
                let key = Count::Cases {
                    status: status.clone(),
                    area: medical_area.clone(),
                };
                StatusCount {
                    status: status.clone(),
                    count: shown(key, n),
                }
            })
            .collect();
        AreaStats {
            occupancy_rate: shown(over_all, all.occupied).and(all.occupancy_rate()),
            medical_area,
            beds,
            cases,
        }
    }
}

/// The sums the statistics publish: each status's and each category's prefecture count
/// over the areas, the occupied beds over every category in each area and the
/// prefecture, and the prefecture's over the areas.
fn sums(areas: &BTreeMap<String, AreaSums>, prefecture: &AreaSums) -> Vec<Sum<Count>> {
    let in_areas = |key: &dyn Fn(Option<String>) -> Count| {
        areas.keys().map(|area| key(Some(area.clone()))).collect()
    };
    let mut sums = Vec::new();
    for status in prefecture.cases.keys() {
        let key = |area| Count::Cases {
            status: status.clone(),
            area,
        };
        sums.push(Sum {
            total: key(None),
            parts: in_areas(&key),
        });
    }
    for category in prefecture.beds.keys().map(Some).chain([None]) {
        let key = |area| Count::Occupied {
            category: category.cloned(),
            area,
        };
        sums.push(Sum {
            total: key(None),
            parts: in_areas(&key),
        });
    }
    let named = areas.iter().map(|(area, sums)| (Some(area.clone()), sums));
    for (area, sums_of_area) in named.chain([(None, prefecture)]) {
        let key = |category| Count::Occupied {
            category,
            area: area.clone(),
        };
        sums.push(Sum {
            total: key(None),
            parts: sums_of_area
                .beds
                .keys()
                .map(|c| key(Some(c.clone())))
                .collect(),
        });
    }
    sums
}

/// Every count of people the areas and the prefecture publish.
fn counts(areas: &BTreeMap<String, AreaSums>, prefecture: &AreaSums) -> BTreeMap<Count, u64> {
    areas
        .iter()
        .map(|(area, sums)| (Some(area.clone()), sums))
        .chain([(None, prefecture)])
        .flat_map(|(area, sums)| sums.counts(&area).collect::<Vec<_>>())
        .collect()
}

/// The figures of every area and of the prefecture, with what must be withheld withheld.
fn published(
    areas: &BTreeMap<String, AreaSums>,
    prefecture: &AreaSums,
    suppress_below: u64,
) -> (Vec<AreaStats>, AreaStats) {
    let counts = counts(areas, prefecture);
    let withheld = withheld(&counts, &sums(areas, prefecture), suppress_below);
    (
        areas
            .iter()
            .map(|(area, sums)| sums.stats(Some(area.clone()), &withheld))
            .collect(),
        prefecture.stats(None, &withheld),
    )
}

impl AreaStats {
    fn message(self) -> pb::AreaStats {
        pb::AreaStats {
            medical_area: self.medical_area,
            beds: self
                .beds
                .into_iter()
                .map(|b| pb::CategoryStats {
                    category: wire(&b.category, BedCategory::parse),
                    secured: b.secured,
                    ready: b.ready,
                    occupied: b.occupied,
                    available: b.available,
                })
                .collect(),
            occupancy_rate: self.occupancy_rate,
            cases: self
                .cases
                .into_iter()
                .map(|c| pb::StatusCount {
                    status: wire(&c.status, CaseStatus::parse),
                    count: c.count,
                })
                .collect(),
        }
    }
}

impl Views {
    /// `public_stats`, the same for every principal: nothing in it identifies anyone.
    async fn public_stats(
        &self,
        principal: &Principal,
        min_versions: &[(noroshi_event_store::StreamId, u64)],
    ) -> Result<pb::PublicStats, QueryError> {
        let read_from = [View::BedBoard, View::PublicStats];
        self.ready(principal, &read_from, min_versions).await?;
        let stream_sequence = self.checkpoints(&read_from).await?;
        let mut areas: BTreeMap<String, AreaSums> = BTreeMap::new();
        let mut prefecture = AreaSums::default();
        for row in crate::bed_board::board(&self.pool, None).await? {
            let add = |sums: &mut AreaSums| {
                sums.beds.entry(row.category.clone()).or_default().add(&row);
            };
            add(&mut prefecture);
            if let Some(area) = &row.medical_area {
                add(areas.entry(area.clone()).or_default());
            }
        }
        for (area, status, count) in super::case_counts(&self.pool).await? {
            let count = u64::try_from(count).unwrap_or_default();
            *prefecture.cases.entry(status.clone()).or_default() += count;
            if let Some(area) = area {
                *areas
                    .entry(area)
                    .or_default()
                    .cases
                    .entry(status)
                    .or_default() += count;
            }
        }
        let suppress_below = self.settings.suppress_below;
        let (areas, prefecture) = published(&areas, &prefecture, suppress_below);
        Ok(pb::PublicStats {
            areas: areas.into_iter().map(AreaStats::message).collect(),
            prefecture: Some(prefecture.message()),
            occupancy_definition: OCCUPANCY_DEFINITION.into(),
            suppress_below,
            stream_sequence,
            generated_at: at(self.now()),
        })
    }
}

fn request_min_versions(r: &pb::GetPublicStatsRequest) -> Result<MinVersions, QueryError> {
    let mut v = Violations::new();
    let min_versions = min_versions(r.min_versions.as_ref(), &mut v);
    QueryError::check(v, min_versions)
}

impl ViewQuery for PublicStats {
    const NAME: &'static str = "public_stats";
    type Request = pb::GetPublicStatsRequest;
    type Response = pb::PublicStats;
    /// The whole (small) statistics, each time a published figure changed.
    type Update = pb::PublicStats;

    fn as_of(request: &pb::GetPublicStatsRequest) -> Option<&pb::AsOf> {
        request.as_of.as_ref()
    }

    fn violations(request: &pb::GetPublicStatsRequest) -> Violations {
        crate::views::violations(request_min_versions(request))
    }

    async fn get(
        views: &Views,
        principal: &Principal,
        request: &pb::GetPublicStatsRequest,
    ) -> Result<pb::PublicStats, QueryError> {
        let min_versions = request_min_versions(request)?;
        views.public_stats(principal, &min_versions).await
    }

    /// The statistics, then the whole statistics again whenever a figure changed.
    async fn watch(
        views: &Views,
        principal: &Principal,
        request: &pb::GetPublicStatsRequest,
    ) -> Result<Updates<pb::PublicStats>, QueryError> {
        let min_versions = request_min_versions(request)?;
        let changes = views.subscribe().await;
        let first = views.public_stats(principal, &min_versions).await?;
        let (views, principal) = (views.clone(), principal.clone());
        let read = move || {
            let (views, principal) = (views.clone(), principal.clone());
            async move { views.public_stats(&principal, &[]).await }
        };
        // Beds come from bed_board, cases from public_stats: either may change them.
        Ok(Box::pin(whole(
            changes,
            &[
                <crate::bed_board::BedBoard as Projection>::NAME,
                <PublicStats as Projection>::NAME,
            ],
            first,
            read,
            |v: &pb::PublicStats| (v.areas.clone(), v.prefecture.clone()),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BELOW: u64 = 5;

    /// Areas by name: cases by status, and occupied beds by category (with secured beds
    /// to spare, so that every occupancy rate exists).
    type Table<'a> = &'a [(&'a str, &'a [(&'a str, u64)], &'a [(&'a str, u64)])];

    fn sums_of(table: Table) -> (BTreeMap<String, AreaSums>, AreaSums) {
        let mut areas = BTreeMap::new();
        let mut prefecture = AreaSums::default();
        for (area, cases, beds) in table {
            let sums: &mut AreaSums = areas.entry((*area).to_owned()).or_default();
            for (status, n) in *cases {
                *sums.cases.entry((*status).to_owned()).or_default() += n;
                *prefecture.cases.entry((*status).to_owned()).or_default() += n;
            }
            for (category, occupied) in *beds {
                for sums in [&mut *sums, &mut prefecture] {
                    let totals = sums.beds.entry((*category).to_owned()).or_default();
                    totals.occupied += occupied;
                    totals.secured += occupied + 10;
                }
            }
        }
        (areas, prefecture)
    }

    fn published_of(table: Table) -> (Vec<AreaStats>, AreaStats) {
        let (areas, prefecture) = sums_of(table);
        published(&areas, &prefecture, BELOW)
    }

    fn cases(stats: &AreaStats, status: &str) -> Option<u64> {
        stats
            .cases
            .iter()
            .find(|c| c.status == status)
            .unwrap()
            .count
    }

    fn occupied(stats: &AreaStats, category: &str) -> Option<u64> {
        let beds = stats.beds.iter().find(|b| b.category == category).unwrap();
        assert_eq!(beds.available.is_some(), beds.occupied.is_some());
        beds.occupied
    }

    #[test]
    fn counts_of_zero_or_at_least_the_threshold_are_all_shown() {
        let table: Table = &[
            (
                "A",
                &[("REPORTED", 0), ("HOME_CARE", 12)],
                &[("MODERATE", 5)],
            ),
            (
                "B",
                &[("REPORTED", 7), ("HOME_CARE", 5)],
                &[("MODERATE", 0)],
            ),
        ];
        let (areas, prefecture) = published_of(table);
        assert_eq!(cases(&areas[0], "REPORTED"), Some(0));
        assert_eq!(cases(&areas[1], "HOME_CARE"), Some(5));
        assert_eq!(cases(&prefecture, "REPORTED"), Some(7));
        assert_eq!(occupied(&areas[0], "MODERATE"), Some(5));
        assert!(areas.iter().all(|a| a.occupancy_rate.is_some()));
    }

    #[test]
    fn a_lone_small_count_takes_the_smallest_other_count_of_its_sum_with_it() {
        // The prefecture's 13 minus 5 and 7 would give A's 1 away.
        let table: Table = &[
            ("A", &[("REPORTED", 1)], &[]),
            ("B", &[("REPORTED", 5)], &[]),
            ("C", &[("REPORTED", 7)], &[]),
        ];
        let (areas, prefecture) = published_of(table);
        let shown: Vec<_> = areas.iter().map(|a| cases(a, "REPORTED")).collect();
        assert_eq!(shown, [None, None, Some(7)]);
        assert_eq!(cases(&prefecture, "REPORTED"), Some(13));
    }

    #[test]
    fn a_total_is_withheld_when_no_other_part_could_hide_the_small_one() {
        let table: Table = &[
            ("A", &[("REPORTED", 3)], &[]),
            ("B", &[("REPORTED", 0)], &[]),
        ];
        let (areas, prefecture) = published_of(table);
        assert_eq!(cases(&areas[0], "REPORTED"), None);
        assert_eq!(cases(&areas[1], "REPORTED"), Some(0));
        assert_eq!(cases(&prefecture, "REPORTED"), None);
    }

    #[test]
    fn the_occupancy_rate_gives_no_withheld_category_away() {
        // A's rate over 22 occupied beds, less its 20 moderate, would show the 2 severe.
        let table: Table = &[
            ("A", &[], &[("MODERATE", 20), ("SEVERE", 2)]),
            ("B", &[], &[("MODERATE", 30), ("SEVERE", 9)]),
        ];
        let (areas, prefecture) = published_of(table);
        assert_eq!(occupied(&areas[0], "SEVERE"), None);
        // The severe column then needs B's 9 withheld, and A's row its 20 or its rate.
        assert_eq!(occupied(&areas[1], "SEVERE"), None);
        assert_eq!(occupied(&prefecture, "SEVERE"), Some(11));
        let a_hides_two = [
            occupied(&areas[0], "MODERATE").is_none(),
            areas[0].occupancy_rate.is_none(),
        ];
        assert!(a_hides_two.iter().any(|hidden| *hidden), "{:?}", areas[0]);
    }

    /// Over many tables: every small count is withheld, and no published sum withholds
    /// exactly one of its entries, so none can be worked out by subtraction.
    #[test]
    fn no_sum_ever_withholds_exactly_one_entry() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Small counts often, large ones sometimes.
            match seed % 4 {
                0 => 0,
                1 | 2 => seed % BELOW,
                _ => seed % n,
            }
        };
        let names = ["A", "B", "C", "D", "E"];
        let statuses = ["REPORTED", "HOME_CARE", "HOSPITALIZED"];
        let categories = ["SEVERE", "MODERATE", "MILD", "HOTEL_ROOM"];
        for _ in 0..2_000 {
            let mut areas: BTreeMap<String, AreaSums> = BTreeMap::new();
            let mut prefecture = AreaSums::default();
            for name in &names[..usize::try_from(next(5) % 5).unwrap() + 1] {
                let sums = areas.entry((*name).to_owned()).or_default();
                for status in statuses {
                    let n = next(40);
                    *sums.cases.entry(status.to_owned()).or_default() += n;
                    *prefecture.cases.entry(status.to_owned()).or_default() += n;
                }
                for category in categories {
                    let occupied = next(60);
                    for sums in [&mut *sums, &mut prefecture] {
                        sums.beds.entry(category.to_owned()).or_default().occupied += occupied;
                    }
                }
            }
            let counts = counts(&areas, &prefecture);
            let sums = sums(&areas, &prefecture);
            let hidden = withheld(&counts, &sums, BELOW);
            for (key, n) in &counts {
                assert!(!(1..BELOW).contains(n) || hidden.contains(key), "{key:?}");
            }
            for sum in &sums {
                let entries = sum.parts.iter().chain([&sum.total]);
                let withheld = entries.filter(|key| hidden.contains(*key)).count();
                assert_ne!(withheld, 1, "{sum:?} in {counts:?}, withheld {hidden:?}");
            }
        }
    }
}
