package RecipeJobs;

# Command line, job expansion and job script shared by run.pl and slurm.pl.

use v5.36;
use Exporter qw(import);
use File::Spec;

our @EXPORT_OK = qw(fail parse_command_line parse_options read_config expand_jobs job_script
  report_failures);

my $USAGE = <<'END';
Usage: %1$s [options] [JOB=1:N] LOGFILE command [args...]
Runs the command (locally for run.pl, through sbatch for slurm.pl) with its stdout and stderr
written to LOGFILE. With JOB=1:N the string JOB in LOGFILE and in the command is replaced by
1..N and the N jobs run in parallel. The command runs in bash and gets its arguments exactly as
given, except that the separate words | || && ; < > >> 2> 2>> &> 2>&1 act as shell operators
(escape them: `%1$s log/x.log sort data.txt \> sorted.txt`); for other shell code use bash -c.
Exits non-zero if any job failed, naming the logs to read.

Options (both runners accept all of them; run.pl uses only --max-jobs-run and --cpus):
  --max-jobs-run M    jobs running at once (run.pl default: number of cores; slurm.pl: no limit)
  --cpus N            CPUs per job (alias --num-threads; reported as threads= in the log)
  --gpus N            GPUs per job (alias --gpu), submitted as --gres=gpu:N
  --mem SIZE          memory per job, e.g. 4G
  --time LIMIT        time limit, e.g. 2:00:00
  --partition NAME    Slurm partition
  --sbatch-args ARGS  further sbatch arguments, e.g. "--account=abc --qos=high"
  --poll-interval S   seconds between checks for finished Slurm jobs (default 5)
  --config FILE       file of `name=value` lines setting the options above (slurm.pl)
slurm.pl also reads options from the environment variable SLURM_OPTS; precedence:
command line > SLURM_OPTS > config file.
END

my %ALIASES = (num_threads => 'cpus', gpu => 'gpus');

my %VALIDATORS = (
  max_jobs_run  => qr/^[1-9]\d*$/,
  cpus          => qr/^[1-9]\d*$/,
  gpus          => qr/^\d+$/,
  mem           => qr/^\d+[KMGT]?$/i,
  time          => qr/^(?:[\d:-]+|UNLIMITED|INFINITE)$/i,
  partition     => qr/^[\w.,-]+$/,
  sbatch_args   => qr/^.*$/s,
  poll_interval => qr/^(?=.*[1-9])(?:\d+\.?\d*|\.\d+)$/,
  config        => qr/^.+$/,
);

sub fail ($message) {
  print STDERR $message;
  exit 1;
}

sub usage_error ($program, $message) {
  fail("$program: $message (see $program --help)\n");
}

sub canonical_option ($program, $raw) {
  my $name = $raw =~ s/^--//r =~ tr/-/_/r;
  $name = $ALIASES{$name} // $name;
  usage_error($program, "unknown option '$raw'") unless exists $VALIDATORS{$name};
  return $name;
}

sub check_value ($program, $name, $value, $origin) {
  $value =~ $VALIDATORS{$name} or fail("$program: invalid value '$value' for $name ($origin)\n");
  return $value;
}

# Consumes leading `--name value` / `--name=value` options from @$args; returns them as a hash.
sub parse_options ($program, $args, $origin) {
  my %options;
  while (@$args && $args->[0] =~ /^--/) {
    my $word = shift @$args;
    if ($word eq '--help') {
      print sprintf($USAGE, $program);
      exit 0;
    }
    my ($raw, $value) = $word =~ /^(--[^=]+)=(.*)$/s ? ($1, $2) : ($word, undef);
    my $name = canonical_option($program, $raw);
    if (!defined $value) {
      usage_error($program, "option '$raw' requires a value") unless @$args;
      $value = shift @$args;
    }
    $options{$name} = check_value($program, $name, $value, $origin);
  }
  return \%options;
}

# Reads `name=value` lines (blank lines and # comments ignored) naming the same options.
sub read_config ($program, $path) {
  open my $fh, '<', $path or fail("$program: cannot read config file '$path': $!\n");
  my %options;
  while (my $line = <$fh>) {
    next if $line =~ /^\s*(?:#|$)/;
    my ($key, $value) = $line =~ /^\s*([\w-]+)\s*=\s*(.*?)\s*$/
      or fail("$program: $path:$.: expected name=value, got: $line");
    $value =~ s/^(["'])(.*)\1$/$2/;
    my $name = canonical_option($program, $key);
    $options{$name} = check_value($program, $name, $value, "$path:$.");
  }
  return \%options;
}

# Parses `[options] [VAR=A:B] LOGFILE command...`.
sub parse_command_line ($program, @argv) {
  usage_error($program, 'missing arguments') unless @argv;
  my $options = parse_options($program, \@argv, 'command line');
  my ($variable, $first, $last) = ('JOB', 1, 1);
  my $is_array = 0;
  if (@argv && $argv[0] =~ /^([A-Za-z_]\w*)=(\d+)(?::(\d+))?$/) {
    ($variable, $first, $last) = ($1, $2, $3 // $2);
    $is_array = 1;
    shift @argv;
    usage_error($program, "empty job range $variable=$first:$last") if $first > $last;
  }
  usage_error($program, 'missing LOGFILE and command') unless @argv >= 2;
  my ($log_template, @words) = @argv;
  if ($is_array && $last > $first && index($log_template, $variable) < 0) {
    usage_error($program, "running $variable=$first:$last needs '$variable' in the log file name"
      . " ($log_template), or all jobs would write to one log");
  }
  return {
    options => $options, variable => $is_array ? $variable : undef, first => $first,
    last => $last, log_template => $log_template, words => \@words,
  };
}

my %OPERATORS = map { $_ => 1 } qw(| || && ; < > >> 2> 2>> &> 2>&1);

sub shell_quote ($word) {
  return $word if $word =~ m{^[\w@%+=:,./-]+$}a;
  return "'" . ($word =~ s/'/'\\''/gr) . "'";
}

sub command_word ($word) {
  return $OPERATORS{$word} ? $word : shell_quote($word);
}

# One {id, log (absolute), command} per job, with the job variable substituted.
sub expand_jobs ($job) {
  my @jobs;
  for my $id ($job->{first} .. $job->{last}) {
    my ($log, @words) = ($job->{log_template}, @{ $job->{words} });
    if (defined $job->{variable}) {
      s/\Q$job->{variable}\E/$id/g for $log, @words;
    }
    my $command = join ' ', map { command_word($_) } @words;
    push @jobs, { id => $id, log => File::Spec->rel2abs($log), command => $command };
  }
  return @jobs;
}

# Bash script that runs one job: header, command output, accounting footer; with $marker set it
# also writes the exit code to that file once the job has ended.
sub job_script (%args) {
  my ($log, $command, $threads) = map { $args{$_} } qw(log command threads);
  my $cwd = File::Spec->rel2abs('.');
  my $script = join "\n",
    '#!/usr/bin/env bash',
    'log=' . shell_quote($log),
    "trap 'echo \"# Received SIGTERM\" >>\"\$log\"' TERM",
    '{',
    '  printf "# %s\n" ' . shell_quote($command),
    '  echo "# Started at $(date) on ${HOSTNAME:-unknown host}"',
    "  echo '#'",
    '} >"$log"',
    'start=$(date +%s)',
    '( cd ' . shell_quote($cwd) . ' && exec bash -c ' . shell_quote($command) . ' ) '
      . '</dev/null >>"$log" 2>&1',
    'code=$?',
    'elapsed=$(( $(date +%s) - start ))',
    '[[ -z $(tail -c 1 "$log") ]] || echo >>"$log"  # footer on a line of its own',
    '{',
    "  echo \"# Accounting: time=\$elapsed threads=$threads\"",
    '  echo "# Ended (code $code) at $(date), elapsed time $elapsed seconds"',
    '} >>"$log"',
    '';
  if (defined $args{marker}) {
    my $marker = shell_quote($args{marker});
    my $partial = shell_quote("$args{marker}.partial");
    $script .= "echo \"\$code\" >$partial && mv -f $partial $marker\n";
  }
  return $script . "exit \"\$code\"\n";
}

# Prints which logs to read; returns the exit status for the runner.
sub report_failures ($program, $job, @failed_logs) {
  return 0 unless @failed_logs;
  my $total = $job->{last} - $job->{first} + 1;
  print STDERR "$program: job failed, see $_\n" for @failed_logs;
  print STDERR "$program: ", scalar(@failed_logs), " / $total jobs failed\n" if $total > 1;
  return 1;
}

1;
