#!/usr/bin/env perl
# Runs a recipe command locally: run.pl [options] [JOB=1:N] LOGFILE command [args...]
# (see --help). Jobs of a JOB=1:N array run in parallel, at most --max-jobs-run at a time.

use v5.36;
use File::Basename qw(dirname);
use File::Path qw(make_path);
use FindBin qw($RealBin);
use lib $RealBin;
use RecipeJobs qw(fail parse_command_line expand_jobs job_script report_failures);

sub cpu_count () {
  my $count = `nproc 2>/dev/null` // '';
  return $count =~ /^(\d+)/ && $1 > 0 ? $1 : 1;
}

sub exit_code ($status) {
  return $status & 127 ? 128 + ($status & 127) : $status >> 8;
}

my $job = parse_command_line('run.pl', @ARGV);
my $max_running = $job->{options}{max_jobs_run} // cpu_count();
my $threads = $job->{options}{cpus} // 1;

my (%task_of_pid, @failed);
my $reap = sub () {
  my $pid = wait;
  my $task = delete $task_of_pid{$pid};
  push @failed, $task if exit_code($?) != 0;
};

for my $task (expand_jobs($job)) {
  $reap->() while keys %task_of_pid >= $max_running;
  eval { make_path(dirname($task->{log})); 1 }
    or fail("run.pl: cannot create the directory of $task->{log}: $@");
  my $script = job_script(log => $task->{log}, command => $task->{command}, threads => $threads);
  my $pid = fork // fail("run.pl: cannot fork: $!\n");
  if ($pid == 0) {
    exec('bash', '-c', $script) or fail("run.pl: cannot run bash: $!\n");
  }
  $task_of_pid{$pid} = $task;
}
$reap->() while %task_of_pid;

exit report_failures('run.pl', $job, map { $_->{log} } sort { $a->{id} <=> $b->{id} } @failed);
