//! Serde for Unix strings and paths as byte arrays: a spec crosses a process boundary intact even
//! when an argument, a variable or a path is not UTF-8 (serde's own PathBuf refuses those).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

fn b(s: &std::ffi::OsStr) -> &[u8] {
    s.as_bytes()
}

pub mod os_vec {
    use super::*;
    pub fn serialize<S: Serializer>(v: &[OsString], s: S) -> Result<S::Ok, S::Error> {
        v.iter().map(|x| b(x)).collect::<Vec<_>>().serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<OsString>, D::Error> {
        Ok(Vec::<Vec<u8>>::deserialize(d)?.into_iter().map(OsString::from_vec).collect())
    }
}

pub mod os_pairs {
    use super::*;
    pub fn serialize<S: Serializer>(v: &[(OsString, OsString)], s: S) -> Result<S::Ok, S::Error> {
        v.iter().map(|(k, x)| (b(k), b(x))).collect::<Vec<_>>().serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(OsString, OsString)>, D::Error> {
        let v = Vec::<(Vec<u8>, Vec<u8>)>::deserialize(d)?;
        Ok(v.into_iter().map(|(k, x)| (OsString::from_vec(k), OsString::from_vec(x))).collect())
    }
}

pub mod path {
    use super::*;
    pub fn serialize<S: Serializer>(p: &std::path::Path, s: S) -> Result<S::Ok, S::Error> {
        b(p.as_os_str()).serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        Ok(PathBuf::from(OsString::from_vec(Vec::<u8>::deserialize(d)?)))
    }
}

pub mod path_vec {
    use super::*;
    pub fn serialize<S: Serializer>(v: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
        v.iter().map(|p| b(p.as_os_str())).collect::<Vec<_>>().serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
        Ok(Vec::<Vec<u8>>::deserialize(d)?.into_iter().map(|v| PathBuf::from(OsString::from_vec(v))).collect())
    }
}

pub mod opt_path {
    use super::*;
    pub fn serialize<S: Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        p.as_ref().map(|p| b(p.as_os_str())).serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        Ok(Option::<Vec<u8>>::deserialize(d)?.map(|v| PathBuf::from(OsString::from_vec(v))))
    }
}
