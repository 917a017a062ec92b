<?php
// CPU-heavier request: a 10 000-iteration arithmetic loop.
$s = 0;
for ($i = 0; $i < 10000; $i++) {
    $s += $i * 2 % 7;
}
echo "ok $s";
