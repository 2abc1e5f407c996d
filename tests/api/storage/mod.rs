//! The store under the real binary: durability across SIGKILL (`persistence`) and a power
//! cut (`power_loss`), a stalled (`disk_stall`) or full (`storage_faults`) disk, `backup`
//! and restore, an `upgrade` from earlier releases' data directories, `migrate` to
//! PostgreSQL, start-up refusals of bad settings and damaged data directories
//! (`startup_errors`), a wall clock that jumps (`clock`), and the command-line operations
//! that open the store offline (`cli`). `loop_disk` is the loop-mounted ext4 the disk tests
//! run on.

mod backup;
mod cli;
mod clock;
mod disk_stall;
mod loop_disk;
mod migrate;
mod persistence;
mod power_loss;
mod startup_errors;
mod storage_faults;
mod upgrade;
