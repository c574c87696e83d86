//! Who is who in a run: connection `i` belongs to room `i / members` and to
//! user `i / connections_per_user`; the first `senders_per_room` connections
//! of each room send. Pure arithmetic, so setup and the run agree.

use std::net::{IpAddr, Ipv4Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub rooms: usize,
    /// Connections per room.
    pub members: usize,
    pub connections_per_user: usize,
    pub senders_per_room: usize,
}

impl Layout {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.rooms >= 1 && self.members >= 1,
            "--rooms and --members are at least 1"
        );
        anyhow::ensure!(
            self.connections_per_user >= 1,
            "--connections-per-user is at least 1"
        );
        anyhow::ensure!(
            self.senders_per_room <= self.members,
            "--senders-per-room cannot exceed --members"
        );
        Ok(())
    }

    pub fn connections(&self) -> usize {
        self.rooms * self.members
    }

    pub fn users(&self) -> usize {
        self.connections().div_ceil(self.connections_per_user)
    }

    pub fn senders(&self) -> usize {
        self.rooms * self.senders_per_room
    }

    pub fn user_of(&self, connection: usize) -> usize {
        connection / self.connections_per_user
    }

    pub fn room_of(&self, connection: usize) -> usize {
        connection / self.members
    }

    pub fn is_sender(&self, connection: usize) -> bool {
        connection % self.members < self.senders_per_room
    }

    /// The distinct users with a connection in `room`, ascending; the first owns it.
    pub fn users_in(&self, room: usize) -> Vec<usize> {
        let first = room * self.members;
        let mut users: Vec<usize> = (first..first + self.members)
            .map(|c| self.user_of(c))
            .collect();
        users.dedup();
        users
    }

    /// The rooms `user` has a connection in, ascending.
    pub fn rooms_of(&self, user: usize) -> Vec<usize> {
        let first = user * self.connections_per_user;
        let last = (first + self.connections_per_user).min(self.connections());
        let mut rooms: Vec<usize> = (first..last).map(|c| self.room_of(c)).collect();
        rooms.dedup();
        rooms
    }
}

/// Local addresses to connect from: each source address has its own ~28 000
/// ephemeral ports, so many connections to one server port need several.
/// Only for an IPv4 loopback target (all of 127.0.0.0/8 is local); elsewhere,
/// and when one address is enough, the system chooses (empty list).
///
/// Binding a source address costs more than it seems: `bind(addr, 0)` has to
/// find a port no socket on that address holds, and with tens of thousands
/// taken (TIME_WAIT included) each call scans the range. In a reconnect storm
/// that made the generator reopen ~300 connections a second; `connect()`
/// without a bind picks its port per destination and stays fast.
pub fn source_addresses(target: IpAddr, connections: usize, wanted: usize) -> Vec<IpAddr> {
    let IpAddr::V4(v4) = target else {
        return Vec::new();
    };
    if !v4.is_loopback() {
        return Vec::new();
    }
    let count = match wanted {
        0 if connections <= PER_SOURCE => return Vec::new(),
        0 => connections.div_ceil(PER_SOURCE),
        wanted => wanted,
    };
    // 127.0.0.2, 127.0.0.3, ... (a /8 has room for far more than anyone needs).
    (0..count.min(250 * 256))
        .map(|i| {
            let n = i + 2;
            IpAddr::V4(Ipv4Addr::new(127, 0, (n / 256) as u8, (n % 256) as u8))
        })
        .collect()
}

/// Connections per source address, well under the default ephemeral range
/// (32768–60999) so that the server's own sockets and TIME_WAIT leave room.
const PER_SOURCE: usize = 20_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_users_and_senders() {
        let layout = Layout {
            rooms: 3,
            members: 4,
            connections_per_user: 2,
            senders_per_room: 1,
        };
        layout.validate().unwrap();
        assert_eq!(layout.connections(), 12);
        assert_eq!(layout.users(), 6);
        assert_eq!(layout.senders(), 3);
        assert_eq!((layout.room_of(5), layout.user_of(5)), (1, 2));
        assert!(layout.is_sender(4) && !layout.is_sender(5));
        assert_eq!(layout.users_in(1), [2, 3]);
        assert_eq!(layout.rooms_of(2), [1]);
    }

    #[test]
    fn a_user_may_span_rooms() {
        let layout = Layout {
            rooms: 2,
            members: 3,
            connections_per_user: 2,
            senders_per_room: 0,
        };
        assert_eq!(layout.users(), 3);
        assert_eq!(layout.rooms_of(1), [0, 1]);
        assert_eq!(layout.users_in(1), [1, 2]);
        let bad = Layout {
            senders_per_room: 4,
            ..layout
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn source_addresses_only_for_ipv4_loopback() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(source_addresses(local, 100, 0).is_empty());
        assert_eq!(
            source_addresses(local, 100, 1),
            ["127.0.0.2".parse::<IpAddr>().unwrap()]
        );
        let many = source_addresses(local, 100_000, 0);
        assert_eq!(many.len(), 5);
        assert_eq!(many[4], "127.0.0.6".parse::<IpAddr>().unwrap());
        assert_eq!(
            source_addresses(local, 10, 300)[299],
            "127.0.1.45".parse::<IpAddr>().unwrap()
        );
        assert!(source_addresses("::1".parse().unwrap(), 10, 0).is_empty());
        assert!(source_addresses("10.0.0.1".parse().unwrap(), 10, 0).is_empty());
    }
}
