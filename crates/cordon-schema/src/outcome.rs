//! How a session ended and what the supervisor saw on the way: the command's ending, denials with
//! their layer and reason (distinct, counted), limits hit, resource peaks, the proxy's decisions.
//! The report's `outcome`, the `end` record's fields, and what the supervisor process sends back.

use crate::Denial;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Denials {
    pub items: Vec<Denial>,
    pub total: u64,
    /// Distinct denials not kept because the list was full (they are still counted in `total`).
    pub overflow: u64,
}

const MAX_DISTINCT: usize = 4096;

impl Denials {
    pub fn add(&mut self, d: Denial) {
        self.total += d.count;
        if let Some(x) = self
            .items
            .iter_mut()
            .find(|x| x.layer == d.layer && x.what == d.what && x.comm == d.comm && x.reason == d.reason)
        {
            x.count += d.count;
            return;
        }
        if self.items.len() >= MAX_DISTINCT {
            self.overflow += 1;
            return;
        }
        self.items.push(d);
    }
}

/// How the command ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Ending {
    Exited {
        code: i32,
    },
    Signaled {
        signal: i32,
    },
    /// The sandbox could not be set up; the command never ran.
    SetupFailed {
        error: String,
    },
    /// The program could not be executed.
    ExecFailed {
        errno: i32,
        program: String,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Peaks {
    /// Highest memory use of the session, in bytes (memory.peak on v2, max_usage_in_bytes on v1).
    pub memory_bytes: Option<u64>,
    /// Most processes at once (pids.peak, v2 only).
    pub processes: Option<u64>,
    /// CPU time used by the whole session, in microseconds (cpu.stat on v2, cpuacct.usage on v1).
    pub cpu_us: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub session_id: String,
    pub ending: Ending,
    pub exit_code: i32,
    pub duration_ms: u64,
    pub wall_time_exceeded: bool,
    pub denials: Denials,
    pub limits_hit: Vec<String>,
    /// Resource peaks the cgroups measured (absent where the host gave none).
    pub peaks: Peaks,
    pub hidden_files: usize,
    pub notes: Vec<String>,
    /// Every egress decision of the proxy and forwarders.
    pub egress: Vec<crate::egress::Decision>,
    /// Session ports published to the host (`--publish`), with what each carried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<Published>,
}

/// A session port reachable from the host, and its traffic.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Published {
    /// Where the host side listened (`127.0.0.1:8080`).
    pub host: String,
    pub session_port: u16,
    /// Connections joined to the session.
    pub connections: u64,
    /// Connections the session did not take (nothing listened on the port, or it ended).
    pub refused: u64,
    /// Why the last refused one was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}
