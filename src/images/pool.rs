//! Image work off the async threads, a few jobs at once.
//!
//! Decoding is CPU- and memory-heavy: run freely on `spawn_blocking` (up to 512
//! threads), a burst of uploads would take every core and many times the memory
//! one image needs, and requests that need none of it would wait. So at most
//! `workers` jobs run at once, at most `queue` more wait, each for at most
//! `queue_timeout`; past that the caller is told to come back later (`503 busy`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Every worker is busy and the queue is full, or the wait was too long.
    #[error("the server is busy processing images; try again in a few seconds")]
    Busy { retry_after: Duration },
    /// The job panicked (a bug in a decoder): the request fails, the server goes on.
    #[error("an image job failed: {0}")]
    Failed(String),
}

pub struct ImagePool {
    /// One permit per job running.
    workers: Arc<Semaphore>,
    /// One permit per job running or waiting: bounds the queue.
    admitted: Arc<Semaphore>,
    queue_timeout: Duration,
}

impl ImagePool {
    /// `workers` at least 1.
    pub fn new(workers: usize, queue: usize, queue_timeout: Duration) -> Self {
        let workers = workers.max(1);
        Self {
            workers: Arc::new(Semaphore::new(workers)),
            admitted: Arc::new(Semaphore::new(workers + queue)),
            queue_timeout,
        }
    }

    /// Runs `job` on a blocking thread once a worker is free.
    pub async fn run<T, F>(&self, job: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let busy = || PoolError::Busy {
            retry_after: self.queue_timeout.max(Duration::from_secs(1)),
        };
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| busy())?;
        let worker = tokio::time::timeout(self.queue_timeout, self.workers.clone().acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        // The permits move into the job: if the client goes away, the
        // request's future is dropped but the thread still runs, and it must
        // still count until it ends.
        tokio::task::spawn_blocking(move || {
            let _permits = (admitted, worker);
            job()
        })
        .await
        .map_err(|e| PoolError::Failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job that holds its worker until told to finish.
    fn held(pool: &Arc<ImagePool>) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let pool = pool.clone();
        let task = tokio::spawn(async move {
            pool.run(move || {
                let _ = wait.recv();
            })
            .await
            .unwrap();
        });
        (release, task)
    }

    async fn until(condition: impl Fn() -> bool) {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn past_the_workers_and_the_queue_it_is_busy() {
        let pool = Arc::new(ImagePool::new(1, 1, Duration::from_secs(30)));
        let (release, running) = held(&pool);
        until(|| pool.workers.available_permits() == 0).await;
        // One waits in the queue...
        let waiting = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| 7).await })
        };
        until(|| pool.admitted.available_permits() == 0).await;
        // ...and the next is refused at once.
        match pool.run(|| 8).await {
            Err(PoolError::Busy { retry_after }) => {
                assert_eq!(retry_after, Duration::from_secs(30))
            }
            other => panic!("expected busy, got {other:?}"),
        }
        release.send(()).unwrap();
        running.await.unwrap();
        assert_eq!(waiting.await.unwrap().unwrap(), 7);
        assert_eq!(pool.run(|| 9).await.unwrap(), 9);
    }

    #[tokio::test]
    async fn a_queued_job_gives_up_after_the_timeout() {
        let pool = Arc::new(ImagePool::new(1, 4, Duration::from_millis(50)));
        let (release, running) = held(&pool);
        until(|| pool.workers.available_permits() == 0).await;
        assert!(matches!(
            pool.run(|| ()).await,
            Err(PoolError::Busy { retry_after }) if retry_after == Duration::from_secs(1)
        ));
        release.send(()).unwrap();
        running.await.unwrap();
        // Nothing leaked: every permit is back.
        assert_eq!(pool.admitted.available_permits(), 5);
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_frees_its_worker() {
        let pool = ImagePool::new(1, 0, Duration::from_secs(1));
        let failed = pool.run(|| panic!("decoder bug")).await;
        assert!(matches!(failed, Err(PoolError::Failed(_))));
        assert_eq!(pool.run(|| 1).await.unwrap(), 1);
    }
}
