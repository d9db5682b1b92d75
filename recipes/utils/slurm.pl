#!/usr/bin/env perl
# Runs a recipe command on Slurm: slurm.pl [options] [JOB=1:N] LOGFILE command [args...]
# (see --help). Each job becomes a batch script in <log dir>/q/, submitted with
# `sbatch --parsable`; the script writes its exit code to <log dir>/q/<name>.done, which this
# runner polls for. Jobs that leave the queue without writing that file count as failed.

use v5.36;
use File::Basename qw(basename dirname);
use File::Path qw(make_path);
use FindBin qw($RealBin);
use lib $RealBin;
use RecipeJobs qw(fail parse_command_line parse_options read_config expand_jobs job_script
  report_failures);

# Polls between two squeue checks of a job, and polls a job may stay out of the queue without
# having written its exit code (shared file systems can show the file late).
my $POLLS_PER_QUEUE_CHECK = 6;
my $POLLS_OF_GRACE = 6;
my %ACTIVE_STATES = map { $_ => 1 }
  qw(PENDING CONFIGURING RUNNING COMPLETING SUSPENDED REQUEUED REQUEUE_HOLD REQUEUE_FED RESIZING
  SIGNALING STAGE_OUT);

sub settings ($command_line) {
  my @env_words = split ' ', $ENV{SLURM_OPTS} // '';
  my $from_env = parse_options('slurm.pl', \@env_words, 'SLURM_OPTS');
  fail("slurm.pl: SLURM_OPTS may hold only options, got '@env_words'\n") if @env_words;
  my $config = $command_line->{config} // $from_env->{config};
  my $from_config = defined $config ? read_config('slurm.pl', $config) : {};
  return { %$from_config, %$from_env, %$command_line };
}

sub sbatch_arguments ($settings, $name, $qdir) {
  my @arguments = ('--parsable', "--job-name=$name", "--output=$qdir/$name.out", '--export=ALL');
  push @arguments, "--partition=$settings->{partition}" if defined $settings->{partition};
  push @arguments, "--time=$settings->{time}" if defined $settings->{time};
  push @arguments, "--mem=$settings->{mem}" if defined $settings->{mem};
  push @arguments, "--cpus-per-task=$settings->{cpus}" if defined $settings->{cpus};
  push @arguments, "--gres=gpu:$settings->{gpus}" if $settings->{gpus};
  push @arguments, split ' ', $settings->{sbatch_args} // '';
  return @arguments;
}

sub submit ($task, $settings) {
  my $qdir = dirname($task->{log}) . '/q';
  my $name = basename($task->{log}) =~ s/\.log$//r;
  eval { make_path($qdir); 1 } or fail("slurm.pl: cannot create $qdir: $@");
  my $script_path = "$qdir/$name.sh";
  my $marker = "$qdir/$name.done";
  unlink $marker;
  open my $fh, '>', $script_path or fail("slurm.pl: cannot write $script_path: $!\n");
  print $fh job_script(log => $task->{log}, command => $task->{command},
    threads => $settings->{cpus} // 1, marker => $marker);
  close $fh or fail("slurm.pl: cannot write $script_path: $!\n");
  chmod 0755, $script_path;

  my @command = ('sbatch', sbatch_arguments($settings, $name, $qdir), $script_path);
  no warnings qw(exec);
  open my $sbatch, '-|', @command or fail("slurm.pl: cannot run sbatch: $!\n");
  my $output = do { local $/; <$sbatch> } // '';
  close $sbatch;
  my $status = $?;
  my ($slurm_id) = $output =~ /^\s*(\d+)/;
  if ($status != 0 || !defined $slurm_id) {
    fail("slurm.pl: submission failed (sbatch exit status " . ($status >> 8)
      . ", output '$output'): @command\n");
  }
  return {
    %$task, slurm_id => $slurm_id, marker => $marker, slurm_output => "$qdir/$name.out",
    polls_gone => undef,
  };
}

sub has_squeue () {
  return grep { -x "$_/squeue" } split /:/, $ENV{PATH} // '';
}

# False only when Slurm says the job is no longer queued or running.
sub in_queue ($slurm_id) {
  my $output = `squeue --noheader --jobs=$slurm_id --format=%T 2>&1`;
  return $output !~ /invalid job id/i if $? != 0;
  my ($state) = $output =~ /^\s*(\S+)/;
  return defined $state && $ACTIVE_STATES{$state};
}

sub read_exit_code ($marker) {
  open my $fh, '<', $marker or return undef;
  my $line = <$fh> // '';
  return $line =~ /^(\d+)\s*$/ ? $1 : undef;
}

my $job = parse_command_line('slurm.pl', @ARGV);
my $settings = settings($job->{options});
my $poll_interval = $settings->{poll_interval} // 5;
my $max_active = $settings->{max_jobs_run} // 0;
my $check_queue = has_squeue();

my @waiting = expand_jobs($job);
my (@active, @failed);
for (my $poll = 1; @waiting || @active; $poll++) {
  push @active, submit(shift @waiting, $settings)
    while @waiting && (!$max_active || @active < $max_active);
  my @still_active;
  for my $task (@active) {
    my $code = read_exit_code($task->{marker});
    if (defined $code) {
      push @failed, $task if $code != 0;
    } elsif (defined $task->{polls_gone} && ++$task->{polls_gone} > $POLLS_OF_GRACE) {
      print STDERR "slurm.pl: Slurm job $task->{slurm_id} left the queue without writing"
        . " $task->{marker} (killed, out of time or out of memory?), see $task->{slurm_output}\n";
      push @failed, $task;
    } else {
      if ($check_queue && !defined $task->{polls_gone} && $poll % $POLLS_PER_QUEUE_CHECK == 0
          && !in_queue($task->{slurm_id})) {
        $task->{polls_gone} = 0;
      }
      push @still_active, $task;
    }
  }
  @active = @still_active;
  select(undef, undef, undef, $poll_interval) if @active;
}

exit report_failures('slurm.pl', $job, map { $_->{log} } sort { $a->{id} <=> $b->{id} } @failed);
