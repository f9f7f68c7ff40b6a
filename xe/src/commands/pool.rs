//! The pool, host and task commands (`pool-join`, `pool-eject`, `host-evacuate`,
//! `task-cancel`, …), with xapi's xe names and parameters.

use api_spec::Value;

use super::vm::confirm;
use super::{Action, Command, format};
use crate::args::Params;
use crate::client::{Session, as_string};
use crate::error::XeError;
use crate::output::{self, Format};
use crate::render::Lookup;
use crate::select;
use crate::tasks::call_and_wait;
use crate::views;

/// A pool, host or task operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolAction {
    Join,
    Eject,
    DesignateNewMaster,
    EmergencyTransitionToMaster,
    RecoverSlaves,
    SyncDatabase,
    /// `host-enable`, `host-disable`, `host-evacuate`: the host message.
    Host(&'static str),
    TaskCancel,
}

/// Adds the pool, host and task commands to the table.
pub fn commands(out: &mut Vec<Command>) {
    use PoolAction::*;
    out.push(
        Command::new(
            "pool-join",
            Action::Pool(Join),
            "Makes this host join the pool whose master is master-address=, logging in there as \
             master-username= with master-password=; --force skips the homogeneity checks.",
        )
        .required(&["master-address", "master-username", "master-password"]),
    );
    out.push(
        Command::new(
            "pool-eject",
            Action::Pool(Eject),
            "Removes the host host-uuid= from the pool, after confirmation unless --force; the \
             host comes back as a new pool of its own, its local storage lost to this pool.",
        )
        .required(&["host-uuid"]),
    );
    out.push(
        Command::new(
            "pool-designate-new-master",
            Action::Pool(DesignateNewMaster),
            "Hands the master role to the host host-uuid=.",
        )
        .required(&["host-uuid"]),
    );
    let mut emergency = Command::new(
        "pool-emergency-transition-to-master",
        Action::Pool(EmergencyTransitionToMaster),
        "Makes the host xe talks to the master when the pool's master is lost for good (logs \
         in to that host alone).",
    );
    emergency.local_login = true;
    out.push(emergency);
    out.push(Command::new(
        "pool-recover-slaves",
        Action::Pool(RecoverSlaves),
        "Makes the other hosts of the pool, left in emergency mode, follow this master; prints \
         the uuids of those that did.",
    ));
    out.push(Command::new(
        "pool-sync-database",
        Action::Pool(SyncDatabase),
        "Forces the pool database to be written on every host now.",
    ));
    for (name, message, help) in [
        (
            "host-enable",
            "enable",
            "Lets VMs be started on the selected host(s) again.",
        ),
        (
            "host-disable",
            "disable",
            "Stops VMs from being started on the selected host(s), as before maintenance.",
        ),
        (
            "host-evacuate",
            "evacuate",
            "Migrates every VM off the selected host(s).",
        ),
    ] {
        out.push(
            Command::new(name, Action::Pool(Host(message)), help)
                .optional(&["host"])
                .selecting("host"),
        );
    }
    out.push(
        Command::new(
            "task-cancel",
            Action::Pool(TaskCancel),
            "Asks the task uuid= to stop.",
        )
        .required(&["uuid"])
        .on("task"),
    );
}

fn host_uuid(params: &Params) -> &str {
    params.get("host-uuid").unwrap_or_default()
}

/// Runs a pool, host or task command.
pub async fn run(
    action: PoolAction,
    command: &Command,
    session: &Session,
    params: &Params,
) -> Result<(), XeError> {
    let text = |name| Value::str(params.get(name).unwrap_or_default());
    match action {
        PoolAction::Join => {
            let method = if params.flag("force") {
                "pool.join_force"
            } else {
                "pool.join"
            };
            let args = vec![
                text("master-address"),
                text("master-username"),
                text("master-password"),
            ];
            call_and_wait(session, method, args).await?;
        }
        PoolAction::Eject => {
            let host = select::by_uuid(session, "host", host_uuid(params)).await?;
            if !params.flag("force") {
                confirm(
                    "WARNING: the host will leave the pool and start again as a new pool of its \
                     own.\nWARNING: the data on its local storage will be lost to this pool.\n",
                )?;
            }
            call_and_wait(session, "pool.eject", vec![Value::String(host)]).await?;
        }
        PoolAction::DesignateNewMaster => {
            let host = select::by_uuid(session, "host", host_uuid(params)).await?;
            call_and_wait(
                session,
                "pool.designate_new_master",
                vec![Value::String(host)],
            )
            .await?;
        }
        PoolAction::EmergencyTransitionToMaster => {
            session
                .call("pool.emergency_transition_to_master", Vec::new())
                .await?;
        }
        PoolAction::RecoverSlaves => {
            let hosts = call_and_wait(session, "pool.recover_slaves", Vec::new()).await?;
            let mut uuids = Vec::new();
            for host in hosts.as_array().unwrap_or(&[]) {
                let r = as_string(host.clone(), "a host reference")?;
                uuids.push(
                    session
                        .call_str("host.get_uuid", vec![Value::String(r)])
                        .await?,
                );
            }
            let out = match format(params) {
                Format::Json => output::json(&serde_json::json!(uuids)),
                Format::Minimal => output::minimal(&uuids),
                Format::Records => uuids.iter().map(|u| format!("{u}\n")).collect(),
            };
            output::print(&out);
        }
        PoolAction::SyncDatabase => {
            call_and_wait(session, "pool.sync_database", Vec::new()).await?;
        }
        PoolAction::Host(message) => {
            let view = views::view("host").ok_or_else(|| XeError::UnknownCommand {
                name: command.name.clone(),
            })?;
            let mut lookup = Lookup::default();
            let hosts = select::objects(
                session,
                view,
                "host",
                params,
                &command.named_params(),
                &mut lookup,
            )
            .await?;
            for (host, _) in hosts {
                call_and_wait(
                    session,
                    &format!("host.{message}"),
                    vec![Value::String(host)],
                )
                .await?;
            }
        }
        PoolAction::TaskCancel => {
            let task = select::by_uuid(session, "task", params.get("uuid").unwrap_or("")).await?;
            session
                .call("task.cancel", vec![Value::String(task)])
                .await?;
        }
    }
    Ok(())
}
