//! The admin pages' templates (`templates/admin/`) and what they show, prepared so that the
//! templates only lay it out. Values are escaped by askama; nothing here is trusted markup.

use askama::Template;

use crate::auth::service::stats::HourCount;
use crate::clock::rfc3339;

/// One link of the section navigation.
#[derive(Debug)]
pub(crate) struct NavItem {
    pub href: String,
    pub label: &'static str,
    pub current: bool,
}

/// The sections, as `(path under the root, section name, label)`.
const SECTIONS: [(&str, &str, &str); 6] = [
    ("admin", "overview", "Overview"),
    ("admin/users", "users", "Users"),
    ("admin/groups", "groups", "Groups"),
    ("admin/clients", "clients", "Apps (OIDC)"),
    ("admin/bans", "bans", "Bans"),
    ("admin/audit", "audit", "Audit log"),
];

/// What every admin page shows around its content.
#[derive(Debug)]
pub(crate) struct Chrome {
    pub root: String,
    /// The signed-in admin's email.
    pub me: String,
    pub nav: Vec<NavItem>,
    /// The forms' `csrf` field (see `super::csrf_token`).
    pub csrf: String,
    pub notice: Option<&'static str>,
    pub error: Option<String>,
}

impl Chrome {
    pub(crate) fn new(
        root: &str,
        me: &str,
        section: &str,
        csrf: String,
        notice: Option<&'static str>,
        error: Option<String>,
    ) -> Chrome {
        Chrome {
            root: root.to_owned(),
            me: me.to_owned(),
            nav: SECTIONS
                .iter()
                .map(|(path, name, label)| NavItem {
                    href: format!("{root}{path}"),
                    label,
                    current: *name == section,
                })
                .collect(),
            csrf,
            notice,
            error,
        }
    }
}

#[derive(Debug, Template)]
#[template(path = "admin/overview.html")]
pub(crate) struct OverviewPage {
    pub chrome: Chrome,
    pub users: usize,
    pub admins: usize,
    pub disabled: usize,
    pub sessions: u64,
    pub groups: usize,
    pub bans: usize,
    pub clients: usize,
    pub chart: Chart,
}

/// The bar chart of logins per hour, as SVG coordinates (the viewBox is 640 × 236; the SVG
/// scales to the page's width).
#[derive(Debug)]
pub(crate) struct Chart {
    pub bars: Vec<Bar>,
    pub grid: Vec<GridLine>,
    pub ticks: Vec<Tick>,
    pub total_ok: u64,
    pub total_failed: u64,
    /// The busiest hour's logins (ok and failed together).
    pub peak: u64,
}

/// One hour: two bars side by side, and its row of the table beside the chart.
#[derive(Debug)]
pub(crate) struct Bar {
    pub ok_x: u32,
    pub ok_y: u32,
    pub ok_h: u32,
    pub failed_x: u32,
    pub failed_y: u32,
    pub failed_h: u32,
    /// `YYYY-MM-DD HH:00` (UTC).
    pub hour: String,
    pub ok: u64,
    pub failed: u64,
}

#[derive(Debug)]
pub(crate) struct GridLine {
    pub y: u32,
    pub label_y: u32,
    pub value: u64,
}

#[derive(Debug)]
pub(crate) struct Tick {
    pub x: u32,
    pub label: String,
}

impl Chart {
    /// The viewBox's width (the template's `viewBox="0 0 640 236"`).
    const WIDTH: u32 = 640;
    const LEFT: u32 = 48;
    const TOP: u32 = 12;
    const BOTTOM: u32 = 200;
    const SLOT: u32 = 24;
    const BAR: u32 = 9;

    pub(crate) fn new(hours: &[HourCount], now: u64) -> Chart {
        let highest = hours.iter().map(|h| h.ok.max(h.failed)).max().unwrap_or(0);
        let scale = nice_ceiling(highest);
        let plot = Self::BOTTOM - Self::TOP;
        let height = |n: u64| -> u32 {
            let h = n.saturating_mul(u64::from(plot)) / scale;
            // A single login still shows.
            let h = u32::try_from(h).unwrap_or(plot).min(plot);
            if n > 0 { h.max(2) } else { 0 }
        };
        let bars = (0u32..)
            .zip(hours)
            .map(|(i, h)| {
                let x = Self::LEFT + i * Self::SLOT;
                let (ok_h, failed_h) = (height(h.ok), height(h.failed));
                Bar {
                    ok_x: x + 2,
                    ok_y: Self::BOTTOM - ok_h,
                    ok_h,
                    failed_x: x + 3 + Self::BAR,
                    failed_y: Self::BOTTOM - failed_h,
                    failed_h,
                    hour: format!("{}:00", &rfc3339(h.start)[..13].replace('T', " ")),
                    ok: h.ok,
                    failed: h.failed,
                }
            })
            .collect();
        let mut grid = vec![0, scale];
        if scale % 2 == 0 {
            grid.insert(1, scale / 2);
        }
        let grid = grid
            .into_iter()
            .map(|value| {
                let y = Self::BOTTOM - height(value).min(plot);
                GridLine {
                    y,
                    label_y: y + 5,
                    value,
                }
            })
            .collect();
        let current_hour = now / 3600;
        let ticks = (0u32..)
            .zip(hours)
            .filter_map(|(i, h)| {
                let ago = current_hour.saturating_sub(h.start / 3600);
                (ago % 6 == 0).then(|| Tick {
                    x: Self::LEFT + i * Self::SLOT + Self::SLOT / 2,
                    label: if ago == 0 {
                        "now".to_owned()
                    } else {
                        format!("{ago} h ago")
                    },
                })
            })
            .collect();
        Chart {
            bars,
            grid,
            ticks,
            total_ok: hours.iter().map(|h| h.ok).sum(),
            total_failed: hours.iter().map(|h| h.failed).sum(),
            peak: hours.iter().map(|h| h.ok + h.failed).max().unwrap_or(0),
        }
    }

    pub(crate) fn right(&self) -> u32 {
        Self::WIDTH - 4
    }
}

/// The smallest of 1, 2, 5, 10, 20, 50, … that is at least `n` (the chart's top).
fn nice_ceiling(n: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            let v = step.saturating_mul(m);
            if v >= n || v == u64::MAX {
                return v;
            }
        }
        step = step.saturating_mul(10);
    }
}

#[derive(Debug, Template)]
#[template(path = "admin/users.html")]
pub(crate) struct UsersPage {
    pub chrome: Chrome,
    /// The search text.
    pub q: String,
    pub rows: Vec<UserRow>,
    /// Users matching the search.
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    /// The position of the first row shown, from 1.
    pub first: usize,
    pub prev: Option<String>,
    pub next: Option<String>,
    /// The create form's email, kept after a failure.
    pub email: String,
    /// Whether invitations work in this build (`super::seams::INVITE`).
    pub invite: bool,
    pub invite_link: Option<String>,
}

#[derive(Debug)]
pub(crate) struct UserRow {
    pub href: String,
    pub email: String,
    pub role: &'static str,
    pub disabled: bool,
    pub groups: String,
    pub created: String,
}

#[derive(Debug, Template)]
#[template(path = "admin/user.html")]
pub(crate) struct UserPage {
    pub chrome: Chrome,
    /// Where this page's forms post.
    pub action: String,
    pub id: String,
    pub email: String,
    pub admin: bool,
    pub disabled: bool,
    pub created: String,
    /// The page shows the signed-in admin's own account.
    pub is_self: bool,
    pub groups: Vec<String>,
    /// Groups the user could join.
    pub available_groups: Vec<String>,
    pub sessions: Vec<SessionRow>,
    /// The user's second factors, in words.
    pub factors: String,
    /// Whether second-factor resets work in this build (`super::seams::RESET_FACTORS`).
    pub reset_factors: bool,
}

#[derive(Debug)]
pub(crate) struct SessionRow {
    pub created: String,
    pub last_seen: String,
    pub device: String,
    pub address: String,
    /// The OpenID Connect client of a grant.
    pub app: Option<String>,
}

#[derive(Debug, Template)]
#[template(path = "admin/groups.html")]
pub(crate) struct GroupsPage {
    pub chrome: Chrome,
    pub rows: Vec<GroupRow>,
}

#[derive(Debug)]
pub(crate) struct GroupRow {
    pub name: String,
    pub members: usize,
}

#[derive(Debug, Template)]
#[template(path = "admin/clients.html")]
pub(crate) struct ClientsPage {
    pub chrome: Chrome,
    pub rows: Vec<ClientRow>,
}

#[derive(Debug)]
pub(crate) struct ClientRow {
    pub id: String,
    pub name: String,
    pub public: bool,
    pub consent: &'static str,
    pub groups: String,
    pub scopes: String,
    pub redirect_uris: Vec<String>,
}

#[derive(Debug, Template)]
#[template(path = "admin/bans.html")]
pub(crate) struct BansPage {
    pub chrome: Chrome,
    pub rows: Vec<BanRow>,
}

#[derive(Debug)]
pub(crate) struct BanRow {
    /// `Account` or `Client address`.
    pub kind: &'static str,
    /// The email or the address (IPv6: its /64).
    pub who: String,
    pub until: String,
    pub minutes_left: u64,
    /// As the lift form posts it (`user:…`, `ip:…`).
    pub subject: String,
}

#[derive(Debug, Template)]
#[template(path = "admin/audit.html")]
pub(crate) struct AuditPage {
    pub chrome: Chrome,
    /// Whether an audit store exists in this build (`super::seams::AUDIT`).
    pub available: bool,
    pub events: Vec<AuditRow>,
}

/// One audit event as the page lists it.
#[derive(Debug)]
pub(crate) struct AuditRow {
    pub at: String,
    pub what: String,
    pub user: String,
    pub by: String,
    pub detail: String,
}

/// A user's second factors in words: whether the authenticator app is on, how many passkeys
/// and unused recovery codes.
pub(crate) fn factors_summary(totp: bool, passkeys: usize, recovery_codes: usize) -> String {
    if !totp && passkeys == 0 {
        return "None: they sign in with their password alone.".to_owned();
    }
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "Authenticator app {}, {}, {} left.",
        if totp { "on" } else { "off" },
        plural(passkeys, "passkey", "passkeys"),
        plural(recovery_codes, "recovery code", "recovery codes"),
    )
}

/// A refusal shown to a browser (not an admin, no such page, a bad form).
#[derive(Debug, Template)]
#[template(path = "admin/error.html")]
pub(crate) struct ErrorPage<'a> {
    pub heading: &'a str,
    pub detail: String,
    pub hint: &'a str,
    pub root: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        let got: Vec<u64> = [0, 1, 2, 3, 6, 10, 11, 49, 51, 999, 1001]
            .into_iter()
            .map(nice_ceiling)
            .collect();
        assert_eq!(got, [1, 1, 2, 5, 10, 10, 20, 50, 100, 1000, 2000]);
        assert_eq!(nice_ceiling(u64::MAX), u64::MAX);
    }

    #[test]
    fn the_chart_fits_its_box() {
        let now = 1_800_000_000;
        let hours: Vec<HourCount> = (0..24u64)
            .map(|i| HourCount {
                start: (now / 3600 - 23 + i) * 3600,
                ok: i * 3,
                failed: if i == 5 { 1 } else { 0 },
            })
            .collect();
        let chart = Chart::new(&hours, now);
        assert_eq!(chart.bars.len(), 24);
        assert_eq!(chart.total_ok, (0..24).map(|i| i * 3).sum::<u64>());
        assert_eq!(chart.total_failed, 1);
        for bar in &chart.bars {
            assert!(bar.ok_y >= Chart::TOP && bar.ok_y + bar.ok_h == Chart::BOTTOM);
            assert!(bar.failed_x + Chart::BAR <= Chart::WIDTH);
        }
        // The tallest bar reaches at most the top; a single failure still shows.
        assert_eq!(chart.bars[23].ok, 69);
        assert!(chart.bars[5].failed_h >= 2);
        assert_eq!(chart.bars[0].ok_h, 0);
        let labels: Vec<&str> = chart.ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["18 h ago", "12 h ago", "6 h ago", "now"]);
        assert_eq!(chart.grid.len(), 3);
    }
}
