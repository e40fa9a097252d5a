//! The mule options (uWSGI's `core/mule.c`: `mule`, `mules`, `farm`,
//! `mule-msg-size`).

/// The most mules of an instance.
pub const MAX_MULES: usize = 64;
/// uWSGI's default `mule-msg-size`.
pub const DEFAULT_MSG_SIZE: usize = 65536;
/// The largest `mule-msg-size` (a datagram's limit).
pub const MAX_MSG_SIZE: usize = 200 * 1024;

/// A farm: a named group of mules sharing a message queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Farm {
    /// Its name.
    pub name: String,
    /// Its mules (1-based ids).
    pub mules: Vec<u32>,
}

/// What `mule*` and `farm` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mules {
    /// One entry per mule (id = index + 1): what it runs first, a `.py`
    /// file or `module:function`, if anything.
    pub patches: Vec<Option<String>>,
    /// `farm = name:1,2`.
    pub farms: Vec<Farm>,
    /// `mule-msg-size`: the largest message.
    pub msg_size: usize,
}

impl Default for Mules {
    fn default() -> Self {
        Mules {
            patches: Vec::new(),
            farms: Vec::new(),
            msg_size: DEFAULT_MSG_SIZE,
        }
    }
}

impl Mules {
    /// `mule = PATCH` (an empty value: a plain mule).
    pub fn add(&mut self, patch: &str) -> Result<(), String> {
        self.push(
            Some(patch.trim())
                .filter(|p| !p.is_empty())
                .map(str::to_owned),
        )
    }

    /// `mules = N`.
    pub fn add_plain(&mut self, n: u64) -> Result<(), String> {
        (0..n).try_for_each(|_| self.push(None))
    }

    fn push(&mut self, patch: Option<String>) -> Result<(), String> {
        if self.patches.len() >= MAX_MULES {
            return Err(format!("at most {MAX_MULES} mules"));
        }
        self.patches.push(patch);
        Ok(())
    }

    /// `farm = name:1,2`, read after every `mule` (uWSGI checks the ids
    /// once all mules are known).
    pub fn add_farm(&mut self, v: &str) -> Result<(), String> {
        if self.farms.len() >= MAX_MULES {
            return Err(format!("at most {MAX_MULES} farms"));
        }
        let bad = || format!("invalid farm value ({v}) must be in the form name:mule[,muleN].");
        let (name, ids) = v.split_once(':').ok_or_else(bad)?;
        if name.is_empty() {
            return Err(bad());
        }
        let mules = ids
            .split(',')
            .map(|p| {
                p.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("invalid mule id: {p}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.farms.push(Farm {
            name: name.to_owned(),
            mules,
        });
        Ok(())
    }

    /// Checks the farms' mule ids against the mules.
    pub fn check(&self) -> Result<(), String> {
        for f in &self.farms {
            if let Some(id) = f
                .mules
                .iter()
                .find(|&&id| id == 0 || id as usize > self.patches.len())
            {
                return Err(format!("invalid mule id: {id}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mules_and_farms_as_uwsgi_reads_them() {
        let mut m = Mules::default();
        m.add("worker.py").unwrap();
        m.add_plain(2).unwrap();
        m.add("").unwrap();
        assert_eq!(m.patches, [Some("worker.py".to_owned()), None, None, None]);
        m.add_farm("images:1,3").unwrap();
        assert_eq!(m.farms[0].mules, [1, 3]);
        assert!(m.check().is_ok());
        assert!(m.add_farm("nocolon").unwrap_err().contains("name:mule"));
        assert!(m.add_farm("x:1,a").unwrap_err().contains("invalid mule id"));
        m.add_farm("far:9").unwrap();
        assert_eq!(m.check().unwrap_err(), "invalid mule id: 9");
        assert!(Mules::default().add_plain(65).is_err());
    }
}
