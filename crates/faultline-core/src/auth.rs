//! Permissions and the principal a credential resolves to.

use std::fmt;
use std::str::FromStr;

/// One permission an API key may carry (`API.md`, Conventions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    FaultsRead,
    FaultsWrite,
    FaultsDelete,
    TokensWrite,
    HeartbeatsWrite,
    WebhooksWrite,
}

impl Permission {
    pub const ALL: [Permission; 6] = [
        Permission::FaultsRead,
        Permission::FaultsWrite,
        Permission::FaultsDelete,
        Permission::TokensWrite,
        Permission::HeartbeatsWrite,
        Permission::WebhooksWrite,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Permission::FaultsRead => "faults:read",
            Permission::FaultsWrite => "faults:write",
            Permission::FaultsDelete => "faults:delete",
            Permission::TokensWrite => "tokens:write",
            Permission::HeartbeatsWrite => "heartbeats:write",
            Permission::WebhooksWrite => "webhooks:write",
        }
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown permission '{0}'; known permissions are faults:read, faults:write, faults:delete, tokens:write, heartbeats:write, webhooks:write (or 'all')"
)]
pub struct UnknownPermission(pub String);

impl FromStr for Permission {
    type Err = UnknownPermission;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| UnknownPermission(s.to_owned()))
    }
}

/// A set of permissions, stored as a comma-separated list of names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Permissions(u8);

impl Permissions {
    pub const fn empty() -> Self {
        Permissions(0)
    }

    pub fn all() -> Self {
        Permission::ALL.into_iter().collect()
    }

    pub const fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    pub fn insert(&mut self, permission: Permission) {
        self.0 |= permission.bit();
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.into_iter().filter(move |p| self.contains(*p))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        let mut set = Permissions::empty();
        for p in iter {
            set.insert(p);
        }
        set
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Permission::as_str).collect();
        f.write_str(&names.join(","))
    }
}

impl FromStr for Permissions {
    type Err = UnknownPermission;
    /// Parses `faults:read,faults:write`; `all` means every permission; blanks are ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = Permissions::empty();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "all" {
                return Ok(Permissions::all());
            }
            set.insert(name.parse()?);
        }
        Ok(set)
    }
}

/// How a request authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialKind {
    /// A long-lived API key, by its id (`key_…`).
    ApiKey { key_id: String },
    /// A read-only access token, by its id (`tok_…`).
    AccessToken { token_id: String },
}

/// Who is acting: the customer, the user, what they may do, and through which credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub customer_id: String,
    pub user_id: String,
    pub permissions: Permissions,
    pub credential: CredentialKind,
    /// Requests per minute this credential may make.
    pub rate_limit_per_minute: u32,
    /// For an access token: the faults it may read. `None` for API keys.
    pub scope: Option<crate::scope::TokenScope>,
}

impl Principal {
    pub fn can(&self, permission: Permission) -> bool {
        self.permissions.contains(permission)
    }

    /// A stable id for the credential, safe to log and to key rate limits on.
    pub fn credential_id(&self) -> &str {
        match &self.credential {
            CredentialKind::ApiKey { key_id } => key_id,
            CredentialKind::AccessToken { token_id } => token_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_round_trip_through_text() {
        let set: Permissions = "faults:read, tokens:write".parse().unwrap();
        assert!(set.contains(Permission::FaultsRead));
        assert!(set.contains(Permission::TokensWrite));
        assert!(!set.contains(Permission::FaultsWrite));
        assert_eq!(set.to_string(), "faults:read,tokens:write");
        assert_eq!(set.to_string().parse::<Permissions>().unwrap(), set);
    }

    #[test]
    fn all_means_every_permission() {
        let set: Permissions = "all".parse().unwrap();
        assert_eq!(set.iter().count(), Permission::ALL.len());
    }

    #[test]
    fn unknown_permission_is_named() {
        let err = "faults:read,faults:fly".parse::<Permissions>().unwrap_err();
        assert!(err.to_string().contains("faults:fly"));
    }
}
