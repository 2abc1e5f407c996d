//! The bench's own database on the cluster `CLAIMD_TEST_POSTGRES_URL` names (`.ci/postgres`
//! starts one): created fresh for a run, asked for the durability settings it runs with,
//! dropped at the end. Messages never carry the URL (it holds a password).

use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// Where `.ci/postgres` says its cluster is.
pub const URL_VARIABLE: &str = "CLAIMD_TEST_POSTGRES_URL";

/// A database made for this run; [`Database::drop_now`] removes it.
pub struct Database {
    admin: Client,
    name: String,
    /// The URL of the new database, for `CLAIMD__STORAGE__POSTGRES_URL`.
    pub url: String,
}

/// Connects to `url`, the connection driven by a task of its own.
async fn connect(url: &str) -> Result<Client, String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|err| format!("cannot connect to the cluster: {err}"))?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            eprintln!("nodes: the bench's own database connection ended: {err}");
        }
    });
    Ok(client)
}

/// `url` with its database replaced by `database` (query parameters kept).
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |at| at + 3);
    let base = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// One setting as the server reports it (`SHOW name`).
async fn show(client: &Client, setting: &str) -> Result<String, String> {
    let messages = client
        .simple_query(&format!("SHOW {setting}"))
        .await
        .map_err(|err| format!("SHOW {setting}: {err}"))?;
    messages
        .iter()
        .find_map(|message| match message {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .ok_or_else(|| format!("SHOW {setting} answered no row"))
}

impl Database {
    /// Creates `claimd_bench_<pid>_<unix seconds>` on the cluster at `cluster_url`.
    ///
    /// # Errors
    /// The cluster cannot be reached or refuses.
    pub async fn create(cluster_url: &str) -> Result<Database, String> {
        let admin = connect(cluster_url).await?;
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let name = format!("claimd_bench_{}_{seconds}", std::process::id());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|err| format!("CREATE DATABASE {name}: {err}"))?;
        Ok(Database {
            url: with_database(cluster_url, &name),
            admin,
            name,
        })
    }

    /// The name of the database, for the report.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `synchronous_commit` and `fsync` as the new database sees them.
    ///
    /// # Errors
    /// The database cannot be reached.
    pub async fn durability(&self) -> Result<(String, String), String> {
        let client = connect(&self.url).await?;
        Ok((
            show(&client, "synchronous_commit").await?,
            show(&client, "fsync").await?,
        ))
    }

    /// Drops the database, ending whatever still holds it.
    pub async fn drop_now(self) {
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(err) = self.admin.batch_execute(&statement).await {
            eprintln!("nodes: could not drop {}: {err}", self.name);
        }
    }
}
