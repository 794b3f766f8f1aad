//! Integration tests: the apply runner's journal in the real registry (SQLite
//! files and PostgreSQL from `scripts/services.sh`), each test on its own
//! database. A run abandoned in the middle of a step (as when the process is
//! killed) leaves exactly the steps that started in the journal, which a new
//! connection (a new process) reads back, takes over under a new name and
//! undoes.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use atrium_engine::apply::runner::{
    Journal, JournalEntry, RegistryJournal, Step, StepError, StepEvent, run, undo_journaled,
};
use atrium_engine::registry::Registry;
use atrium_engine::test_services::fresh_postgres_database;

/// Objects that exist, as the steps leave them.
#[derive(Default)]
struct World {
    objects: Mutex<BTreeSet<usize>>,
    /// The step that never finishes (the process dies during it).
    hangs_at: Option<usize>,
}

struct MakeObject(usize);

#[async_trait]
impl Step<World> for MakeObject {
    fn name(&self) -> String {
        format!("object {}", self.0)
    }

    async fn apply(&self, world: &World) -> Result<(), StepError> {
        world.objects.lock().unwrap().insert(self.0);
        if world.hangs_at == Some(self.0) {
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn undo(&self, world: &World) -> Result<(), StepError> {
        world.objects.lock().unwrap().remove(&self.0);
        Ok(())
    }
}

fn steps() -> Vec<Box<dyn Step<World>>> {
    (0..4).map(|index| Box::new(MakeObject(index)) as Box<dyn Step<World>>).collect()
}

async fn check_an_abandoned_run_is_undone_from_the_journal(url: &str) {
    let registry = Registry::connect(url).await.expect("open the registry");
    let journal = RegistryJournal(&registry);
    let world = World { hangs_at: Some(2), ..World::default() };
    let abandoned =
        tokio::time::timeout(Duration::from_millis(300), run("app_instance acme/erp t1", &steps(), &world, &journal))
            .await;
    assert!(abandoned.is_err(), "the run was meant to hang in step 2");
    registry.close().await;

    // A new process: it sees what started, and nothing of another operation.
    let registry = Registry::connect(url).await.expect("reopen the registry");
    let journal = RegistryJournal(&registry);
    let entries = journal.entries("app_instance acme/erp t1").await.unwrap();
    let shown: Vec<(usize, &str, StepEvent)> =
        entries.iter().map(|JournalEntry { index, step, event }| (*index, step.as_str(), *event)).collect();
    assert_eq!(
        shown,
        [
            (0, "object 0", StepEvent::Finished),
            (1, "object 1", StepEvent::Finished),
            (2, "object 2", StepEvent::Started)
        ]
    );
    assert!(journal.entries("app_instance acme/erp t2").await.unwrap().is_empty());
    assert_eq!(registry.journal_operations().await.unwrap(), ["app_instance acme/erp t1"]);

    let world = World { objects: Mutex::new(world.objects.into_inner().unwrap()), hangs_at: None };
    assert_eq!(*world.objects.lock().unwrap(), BTreeSet::from([0, 1, 2]));
    // A resumed create takes the interrupted one's journal over, keeping
    // what it journaled itself.
    let own = JournalEntry { index: 0, step: "object 0".into(), event: StepEvent::Started };
    journal.record("app_instance acme/erp t4", &own).await.unwrap();
    journal.adopt("app_instance acme/erp t1", "app_instance acme/erp t4").await.unwrap();
    assert_eq!(registry.journal_operations().await.unwrap(), ["app_instance acme/erp t4"]);
    let adopted = journal.entries("app_instance acme/erp t4").await.unwrap();
    let events: Vec<StepEvent> = adopted.iter().map(|entry| entry.event).collect();
    assert_eq!(events, [StepEvent::Started, StepEvent::Finished, StepEvent::Started]);
    undo_journaled("app_instance acme/erp t4", &steps(), &world, &journal).await.unwrap();
    assert!(world.objects.lock().unwrap().is_empty(), "left: {:?}", world.objects.lock().unwrap());
    assert!(registry.journal_operations().await.unwrap().is_empty());

    // Run to the end: every object made, nothing left in the journal.
    run("app_instance acme/erp t3", &steps(), &world, &journal).await.unwrap();
    assert_eq!(world.objects.lock().unwrap().len(), 4);
    assert!(registry.journal_operations().await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_journal_shows_an_abandoned_run_to_the_next_process() {
    let directory = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", directory.path().join("atrium.db").display());
    check_an_abandoned_run_is_undone_from_the_journal(&url).await;
}

#[tokio::test]
async fn postgres_journal_shows_an_abandoned_run_to_the_next_process() {
    let url = fresh_postgres_database("journal_abandoned_run").await;
    check_an_abandoned_run_is_undone_from_the_journal(&url).await;
}
