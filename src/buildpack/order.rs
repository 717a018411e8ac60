//! Order groups: which groups of buildpacks detection tries, in order, once composite
//! buildpacks are replaced by their own `[[order]]` groups.
//!
//! As the reference lifecycle does (`detectOrder`), a composite buildpack in a group stands for
//! each of its groups in turn, with the rest of the outer group after it; an optional composite
//! may also stand for nothing. Groups are tried in order and the first that passes detection
//! and plan resolution is used ([`super::resolve`]).

use super::descriptor::OrderEntry;

/// One buildpack of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Its id.
    pub id: String,
    /// The version asked for, if any.
    pub version: Option<String>,
    /// Whether the group still passes when it fails detection or its plan does not match.
    pub optional: bool,
}

impl From<&OrderEntry> for GroupMember {
    fn from(e: &OrderEntry) -> Self {
        Self { id: e.id.clone(), version: e.version.clone(), optional: e.optional }
    }
}

/// A group: buildpacks run in order.
pub type Group = Vec<GroupMember>;

/// Composites nest at most this deep; deeper means a composite names itself.
const MAX_DEPTH: usize = 8;
/// Groups one order may expand to; more means a mistake, not an app.
const MAX_GROUPS: usize = 256;

/// Why an order could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// Composites nest too deep: one of them names itself, directly or not.
    #[error(
        "composite buildpack {id} nests more than {MAX_DEPTH} levels deep: a composite names itself; fix its [[order]]"
    )]
    TooDeep {
        /// The composite where the limit was hit.
        id: String,
    },
    /// The order expands to too many groups.
    #[error("the buildpack order expands to more than {MAX_GROUPS} groups: use fewer optional composites")]
    TooMany,
}

/// The flat groups `order` stands for, in the order detection tries them. `composite(id)`
/// gives a composite buildpack's `[[order]]` groups, or `None` for a buildpack with `bin/`.
pub fn flatten<F>(order: &[Group], composite: &F) -> Result<Vec<Group>, OrderError>
where
    F: Fn(&str) -> Option<Vec<Group>>,
{
    flatten_at(order, composite, 0)
}

fn flatten_at<F>(order: &[Group], composite: &F, depth: usize) -> Result<Vec<Group>, OrderError>
where
    F: Fn(&str) -> Option<Vec<Group>>,
{
    let mut out = Vec::new();
    for group in order {
        // Each member becomes its alternatives; the group is their product, in order.
        let mut partial: Vec<Group> = vec![Vec::new()];
        for member in group {
            let alternatives = match composite(&member.id) {
                None => vec![vec![member.clone()]],
                Some(inner) => {
                    if depth >= MAX_DEPTH {
                        return Err(OrderError::TooDeep { id: member.id.clone() });
                    }
                    let mut alts = flatten_at(&inner, composite, depth + 1)?;
                    if member.optional {
                        alts.push(Vec::new());
                    }
                    alts
                }
            };
            let mut next = Vec::new();
            for prefix in &partial {
                for alt in &alternatives {
                    let mut g = prefix.clone();
                    g.extend(alt.iter().cloned());
                    next.push(g);
                    if next.len() > MAX_GROUPS {
                        return Err(OrderError::TooMany);
                    }
                }
            }
            partial = next;
        }
        out.extend(partial.into_iter().filter(|g| !g.is_empty()));
        if out.len() > MAX_GROUPS {
            return Err(OrderError::TooMany);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, optional: bool) -> GroupMember {
        GroupMember { id: id.into(), version: None, optional }
    }

    fn ids(groups: &[Group]) -> Vec<String> {
        groups.iter().map(|g| g.iter().map(|m| m.id.as_str()).collect::<Vec<_>>().join(",")).collect()
    }

    #[test]
    fn a_composite_stands_for_each_of_its_groups_in_turn() {
        let composite = |id: &str| match id {
            "meta" => Some(vec![vec![m("a", false), m("b", true)], vec![m("c", false)]]),
            _ => None,
        };
        let order = vec![vec![m("first", false), m("meta", false), m("last", true)], vec![m("plain", false)]];
        let got = flatten(&order, &composite).unwrap();
        assert_eq!(ids(&got), ["first,a,b,last", "first,c,last", "plain"]);
        assert!(got[0][2].optional && !got[0][1].optional, "inner optional flags are kept");
    }

    #[test]
    fn an_optional_composite_may_stand_for_nothing() {
        let composite = |id: &str| (id == "meta").then(|| vec![vec![m("a", false)]]);
        let got = flatten(&[vec![m("meta", true), m("z", false)]], &composite).unwrap();
        assert_eq!(ids(&got), ["a,z", "z"]);
    }

    #[test]
    fn a_composite_naming_itself_is_refused() {
        let composite = |id: &str| (id == "loop").then(|| vec![vec![m("loop", false)]]);
        let err = flatten(&[vec![m("loop", false)]], &composite).unwrap_err();
        assert_eq!(err, OrderError::TooDeep { id: "loop".into() });
        assert!(err.to_string().contains("names itself"));
    }
}
