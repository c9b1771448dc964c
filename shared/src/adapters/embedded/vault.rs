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
        self.names().len()
    }

    /// The names of the secrets it holds (tests, benches); the versions
    /// kept beside a secret are not secrets of their own.
    pub fn names(&self) -> Vec<String> {
        self.secrets.lock().expect("vault lock").keys().filter(|k| !k.contains('@')).cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How many versions of a secret the embedded vault keeps (Secrets Manager
/// keeps about 100).
const KEPT_VERSIONS: usize = 20;

fn version_key(name: &str, version: &str) -> String {
    format!("{name}@v{version}")
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

    /// Versions are kept beside the secret as `{name}@v{version}` (the last
    /// [`KEPT_VERSIONS`] of each), and the newest is also its value.
    async fn put_version(&self, name: &str, version: &str, value: &SecretString) -> Result<(), VaultError> {
        check_name(name)?;
        let key = version_key(name, version);
        check_name(&key)?;
        let mut secrets = self.secrets.lock().expect("vault lock");
        let order_key = format!("{name}@order");
        let mut order: Vec<String> =
            secrets.get(&order_key).map(|o| o.split(',').map(str::to_owned).collect()).unwrap_or_default();
        if !order.iter().any(|v| v == version) {
            order.push(version.to_owned());
        }
        let mut changes = vec![
            (key, Some(value.expose_secret().to_owned())),
            (name.to_owned(), Some(value.expose_secret().to_owned())),
        ];
        while order.len() > KEPT_VERSIONS {
            changes.push((version_key(name, &order.remove(0)), None));
        }
        changes.push((order_key, Some(order.join(","))));
        // Applied, and undone in reverse when the file cannot be written.
        let mut undo = Vec::with_capacity(changes.len());
        for (k, v) in changes {
            let previous = match v {
                Some(v) => secrets.insert(k.clone(), v),
                None => secrets.remove(&k),
            };
            undo.push((k, previous));
        }
        if let Err(e) = self.file.save(&*secrets) {
            for (k, previous) in undo.into_iter().rev() {
                match previous {
                    Some(p) => secrets.insert(k, p),
                    None => secrets.remove(&k),
                };
            }
            return Err(VaultError::Unavailable(e.kind().to_string()));
        }
        Ok(())
    }

    async fn get_version(&self, name: &str, version: &str) -> Result<Option<SecretString>, VaultError> {
        check_name(name)?;
        let secrets = self.secrets.lock().expect("vault lock");
        Ok(secrets.get(&version_key(name, version)).map(|v| SecretString::from(v.clone())))
    }

    async fn delete(&self, name: &str) -> Result<(), VaultError> {
        check_name(name)?;
        let mut secrets = self.secrets.lock().expect("vault lock");
        let versions = format!("{name}@");
        let mut keys = vec![name.to_owned()];
        keys.extend(
            secrets.range(versions.clone()..).take_while(|(k, _)| k.starts_with(&versions)).map(|(k, _)| k.clone()),
        );
        let removed: Vec<(String, String)> =
            keys.into_iter().filter_map(|k| secrets.remove(&k).map(|v| (k, v))).collect();
        if !removed.is_empty() {
            if let Err(e) = self.file.save(&*secrets) {
                secrets.extend(removed);
                return Err(VaultError::Unavailable(e.kind().to_string()));
            }
        }
        Ok(())
    }
}
