<?php
// ~100 ms of wall time per request, so that requests are reliably in flight when the stop test
// signals the spawner. The request id (from nginx) is logged first: a request in that log was
// accepted by a worker, which tells "failed after a worker took it" from "failed in the backlog".
if (isset($_SERVER['BENCH_START_LOG'], $_SERVER['BENCH_REQUEST_ID'])) {
    file_put_contents($_SERVER['BENCH_START_LOG'], $_SERVER['BENCH_REQUEST_ID'] . "\n", FILE_APPEND);
}
usleep(100000);
echo "ok slow";
