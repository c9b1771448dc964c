use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use super::JsonFile;
use crate::domain::error::VaultError;
use crate::ports::SecretVault;

/// The embedded secret vault: `vault.json` (mode 0600) under the data folder.
/// For local use only: values are stored unencrypted on this machine.
pub struct MemoryVault {
    secrets: Mutex<BTreeMap<String, String>>,
    file: JsonFile,
}

impl MemoryVault {
    pub fn open(dir: Option<&Path>) -> std::io::Result<Self> {
        let file = JsonFile::new(dir, "vault.json");
        Ok(Self { secrets: Mutex::new(file.load()?), file })
    }

    /// How many secrets it holds (tests).
    pub fn len(&self) -> usize {
        self.secrets.lock().expect("vault lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub(crate) fn check_name(name: &str) -> Result<(), VaultError> {
    let ok = !name.is_empty()
        && name.len() <= 512
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(VaultError::InvalidName)
    }
}

#[async_trait]
impl SecretVault for MemoryVault {
    async fn put(&self, name: &str, value: &SecretString) -> Result<(), VaultError> {
        check_name(name)?;
        let mut secrets = self.secrets.lock().expect("vault lock");
        let previous = secrets.insert(name.to_owned(), value.expose_secret().to_owned());
        if let Err(e) = self.file.save(&*secrets) {
            match previous {
                Some(p) => secrets.insert(name.to_owned(), p),
                None => secrets.remove(name),
            };
            return Err(VaultError::Unavailable(e.kind().to_string()));
        }
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<SecretString>, VaultError> {
        check_name(name)?;
        let secrets = self.secrets.lock().expect("vault lock");
        Ok(secrets.get(name).map(|v| SecretString::from(v.clone())))
    }

    async fn delete(&self, name: &str) -> Result<(), VaultError> {
        check_name(name)?;
        let mut secrets = self.secrets.lock().expect("vault lock");
        if let Some(previous) = secrets.remove(name) {
            if let Err(e) = self.file.save(&*secrets) {
                secrets.insert(name.to_owned(), previous);
                return Err(VaultError::Unavailable(e.kind().to_string()));
            }
        }
        Ok(())
    }
}
