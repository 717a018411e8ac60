//! What an app's router needs from the engine: where the running web containers of a release
//! listen on the host. Read-only.

use bollard::Docker;
use bollard::query_parameters::ListContainersOptions;

use super::container::ContainerError;
use super::labels::{self, Kind};
use crate::ids::{AppName, ReleaseId};

/// The host ports of `release`'s web containers that are running now (not restarting, not
/// stopped), in index order.
pub async fn web_ports(
    docker: &Docker,
    app: &AppName,
    release: ReleaseId,
) -> Result<Vec<u16>, ContainerError> {
    let mut filters = labels::release_filter(app, release);
    filters.insert("status".to_owned(), vec!["running".to_owned()]);
    let options = ListContainersOptions { all: false, filters: Some(filters), ..Default::default() };
    let list = docker.list_containers(Some(options)).await.map_err(|source| ContainerError::Engine {
        what: "list",
        container: app.to_string(),
        source,
    })?;
    let mut found: Vec<(u32, u16)> = list
        .into_iter()
        .filter_map(|c| {
            let labels = c.labels?;
            let web = labels::kind_of(&labels) == Some(Kind::Process)
                && labels.get(labels::PROCESS).is_some_and(|t| t == "web");
            let index = labels.get(labels::INDEX)?.parse().ok()?;
            let port = c.ports?.into_iter().find_map(|p| p.public_port)?;
            web.then_some((index, port))
        })
        .collect();
    found.sort_unstable();
    found.dedup_by_key(|(_, port)| *port);
    Ok(found.into_iter().map(|(_, port)| port).collect())
}
