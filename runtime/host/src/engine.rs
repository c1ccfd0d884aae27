//! The one wasmtime [`Engine`] of a process, its pre-built [`Linker`], the epoch ticker
//! that enforces wall-clock deadlines, and the gate that keeps concurrent instances
//! within the pool.
//!
//! Built once at startup: nothing here is rebuilt per call. The linker holds WASI p2
//! (with nothing granted, see `call.rs`) and the choreo imports; each loaded handler
//! keeps an `InstancePre` made from it, so a call only allocates a store and an
//! instance from the pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::Error;
use crate::bindings::Handler;
use crate::call::CallState;
use crate::reset::{MemoryReset, ResetMode};
use crate::warm::WarmRegistry;

/// How often the epoch advances. Deadlines are checked at each tick, so a looping
/// guest is stopped at most this long after its deadline; a running guest also yields
/// to the async executor at each tick, so one busy guest cannot starve the others.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Bytes of each table slot kept resident between instances.
const KEEP_RESIDENT_TABLE_BYTES: usize = 64 << 10;
/// How often the epoch ticker drops warm instances idle past [`crate::warm::IDLE_TTL`].
const WARM_SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Slots decommitted together, so the TLB is flushed once per batch.
const DECOMMIT_BATCH: usize = 16;

/// Sizes of the pooling allocator: every instance comes from pre-reserved slots, which
/// makes instantiation a few microseconds. The defaults fit every guest toolchain
/// measured (Rust, C, componentize-py, componentize-js) with room for concurrency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Component instances alive at once across all handlers (the concurrency ceiling
    /// of the whole host). Default 256.
    pub max_instances: u32,
    /// Core instances alive at once across all components. Default 4096.
    pub max_core_instances: u32,
    /// Linear memories alive at once. Default 512.
    pub max_memories: u32,
    /// Tables alive at once. Default 4096.
    pub max_tables: u32,
    /// Ceiling on any one linear memory, in bytes; a handler's memory limit may not
    /// exceed it. Default 256 MiB.
    pub max_memory_bytes: usize,
    /// Ceiling on any one table's elements. Default 100,000.
    pub max_table_elements: usize,
    /// Ceiling on core instances inside one component. Default 64.
    pub max_core_instances_per_component: u32,
    /// How a spent instance's memory is reset for the next one. Default
    /// [`MemoryReset::Auto`]: by the kernel's page scan where it has one.
    pub memory_reset: MemoryReset,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_instances: 256,
            max_core_instances: 4096,
            max_memories: 512,
            max_tables: 4096,
            max_memory_bytes: 256 << 20,
            max_table_elements: 100_000,
            max_core_instances_per_component: 64,
            memory_reset: MemoryReset::Auto,
        }
    }
}

/// Everything the host shares between calls: engine, linker, ticker, instance gate.
/// Cheap to clone.
#[derive(Clone)]
pub struct Host {
    pub(crate) inner: Arc<HostInner>,
}

pub(crate) struct HostInner {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<CallState>,
    pub(crate) pool: PoolConfig,
    /// How spent memories are reset, `pool.memory_reset` decided.
    reset: ResetMode,
    /// One permit per pool slot: a call waits for a slot instead of failing when every
    /// instance is busy. An idle warm instance holds its permit (`warm.rs`).
    pub(crate) slots: Arc<Semaphore>,
    /// Idle warm instances of every handler, which give their slots back on demand.
    pub(crate) warm: Arc<WarmRegistry>,
    ticker: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("pool", &self.inner.pool)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// Builds the engine with the default pool.
    pub fn new() -> Result<Self, Error> {
        Self::with_pool(PoolConfig::default())
    }

    /// Builds the engine with the given pool sizes and starts the epoch ticker.
    pub fn with_pool(pool: PoolConfig) -> Result<Self, Error> {
        let reset = pool.memory_reset.resolve();
        match reset {
            ResetMode::Scan => {
                tracing::debug!("instance memories are reset by scanning for written pages")
            }
            ResetMode::Decommit => tracing::warn!(
                "instance memories are reset by decommitting them: this kernel has no \
                 PAGEMAP_SCAN (Linux 6.7+), or it is turned off; fresh instances cost \
                 about twice as much"
            ),
        }
        let engine = Engine::new(&engine_config(&pool, reset)).map_err(Error::Engine)?;
        let mut linker = Linker::<CallState>::new(&engine);
        // WASI p2 is linked in full, because toolchains import all of it (componentize-py
        // imports sockets too); what it may reach is decided per call by the WasiCtx,
        // which grants nothing.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(Error::Engine)?;
        Handler::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)
            .map_err(Error::Engine)?;

        let stop = Arc::new(AtomicBool::new(false));
        let warm = Arc::new(WarmRegistry::default());
        let ticker = {
            let engine = engine.clone();
            let stop = stop.clone();
            let warm = warm.clone();
            std::thread::Builder::new()
                .name("choreo-epoch".into())
                .spawn(move || {
                    let mut last_sweep = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                        if last_sweep.elapsed() >= WARM_SWEEP_INTERVAL {
                            last_sweep = Instant::now();
                            warm.sweep();
                        }
                    }
                })
                .map_err(|err| Error::Engine(wasmtime::Error::new(err)))?
        };
        let slots = Arc::new(Semaphore::new(pool.max_instances as usize));
        Ok(Host {
            inner: Arc::new(HostInner {
                engine,
                linker,
                pool,
                reset,
                slots,
                warm,
                ticker: Some(ticker),
                stop,
            }),
        })
    }

    /// The wasmtime engine, for callers that compile or cache components themselves.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The pool sizes this host was built with.
    pub fn pool(&self) -> &PoolConfig {
        &self.inner.pool
    }

    /// How this host resets spent instances' memories.
    pub fn memory_reset(&self) -> ResetMode {
        self.inner.reset
    }

    /// A pool slot for one instance. When every slot is taken, idle warm instances give
    /// theirs back first; only then does the call wait for a running one to finish.
    pub(crate) async fn acquire_slot(&self) -> OwnedSemaphorePermit {
        loop {
            if let Ok(permit) = self.inner.slots.clone().try_acquire_owned() {
                return permit;
            }
            if !self.inner.warm.evict_one() {
                return self
                    .inner
                    .slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the instance gate is never closed");
            }
        }
    }

    /// A fingerprint of everything that makes a precompiled artifact loadable by this
    /// host (wasmtime version, target, settings). Cache artifacts under it.
    pub fn artifact_fingerprint(&self) -> String {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut hasher = DefaultHasher::new();
        self.inner
            .engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }
}

impl Drop for HostInner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            // The ticker wakes every EPOCH_TICK, so this join is short.
            let _ = ticker.join();
        }
    }
}

fn engine_config(pool: &PoolConfig, reset: ResetMode) -> Config {
    let mut pooling = PoolingAllocationConfig::new();
    pooling
        .total_component_instances(pool.max_instances)
        .total_core_instances(pool.max_core_instances)
        .total_memories(pool.max_memories)
        .total_tables(pool.max_tables)
        .total_stacks(pool.max_instances)
        .max_memory_size(pool.max_memory_bytes)
        .table_elements(pool.max_table_elements)
        .max_core_instances_per_component(pool.max_core_instances_per_component)
        .max_memories_per_component(8)
        .max_tables_per_component(pool.max_core_instances_per_component)
        // Interpreted guests (Python) carry large instance metadata.
        .max_core_instance_size(4 << 20)
        .max_component_instance_size(4 << 20)
        // A fresh instance per delivery makes slot reuse the hot path: `reset.rs` says
        // how memories are reset. Tables are a page or two, reset with memset.
        // Decommits that remain are batched.
        .linear_memory_keep_resident(reset.keep_resident_bytes())
        .table_keep_resident(KEEP_RESIDENT_TABLE_BYTES)
        .pagemap_scan(reset.pagemap_scan())
        .decommit_batch_size(DECOMMIT_BATCH);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .parallel_compilation(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    config
}
