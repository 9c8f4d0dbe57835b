//! Durability: the journal, snapshots, the state-folder lock, recovery and
//! quarantine. The store keeps what it is given; it decides no policy.
