# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_mlsdiag_global_optspecs
    string join \n json color= fixture= h/help V/version
end

function __fish_mlsdiag_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_mlsdiag_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_mlsdiag_using_subcommand
    set -l cmd (__fish_mlsdiag_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -l color -d 'When to colour tables; NO_COLOR in the environment turns colour off in auto mode' -r -f -a "auto\t''
always\t''
never\t''"
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -l fixture -d 'Read processes from a recording (`mlsdiag record`) instead of the live OS' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -l json -d 'Print one JSON document (with schema_version) instead of tables'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -s h -l help -d 'Print help'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -s V -l version -d 'Print version'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -f -a "check" -d 'Classify every worker: healthy, hung, crashed, orphan or leaking, with the evidence'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -f -a "watch" -d 'Check every --interval, print verdict changes, snapshot and alert on findings, export metrics'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -f -a "top" -d 'The live view: the workers as a tree with their verdicts as they form, the evidence, stacks, threads and fds'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -f -a "fleet" -d 'Run `mlsdiag check` on many hosts over ssh and merge the results'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -f -a "threads" -d 'Every thread of a process: state, CPU, what it waits on, grouped by lock'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -f -a "fds" -d 'Every descriptor of a process: pipes, sockets with their peers, shared memory, files'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -f -a "stacks" -d 'Where each thread is stuck (Python and native frames, lock waits) and known MLX hangs it matches'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -f -a "registry" -d 'The worker registry joined with the live processes'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -f -a "logs" -d 'Request timeline, throughput, anomalies and the hang trigger from server logs'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -f -a "mem" -d 'System memory and pressure, per-worker memory and its trend'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -f -a "demo" -d 'Start a simulated MLS with misbehaving workers and diagnose it'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -f -a "snapshot" -d 'Save each worker\'s full diagnosis as text and JSON (for cron, history and postmortems)'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -f -a "history" -d 'Trends across saved snapshots: leaks, frozen CPU time, restarts'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -f -a "postmortem" -d 'Write the incident postmortem (Markdown) from snapshots and the server log'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -f -a "repro" -d 'Replay requests many times against a live server or the reference MLX loop; catch and snapshot stalls'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -f -a "record" -d 'Save readings, threads, descriptors and memory of workers to a JSON recording'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -f -a "run" -d 'Start a stock server (mlx_lm.server …) with the token record wired into mlx-lm, found with no registry'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -f -a "man" -d 'Print the man page (roff): mlsdiag(1), or a subcommand\'s, mlsdiag-SUBCOMMAND(1)'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -f -a "__demo-orchestrator" -d '(internal) the demo\'s orchestrator process'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -f -a "__demo-worker" -d '(internal) one demo worker process'
complete -c mlsdiag -n "__fish_mlsdiag_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand check" -l pattern -d 'Regex matched against each process\'s full command line [default: MLS\'s workers (mlx-server-v3), known MLX servers (mlx_lm.server, …) and every process with MLX loaded]' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand check" -l registry -d 'The orchestrator\'s worker registry (JSON); none at the default path = no orchestrator' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand check" -l log -d 'MLS server log; in-flight requests in it are what proves a hang' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand check" -l window -d 'Sampling window for CPU%, thread states and memory growth' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand check" -l leak-window -d 'Window for the memory trend, when longer than --window' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand check" -l hung-after -d 'A request in flight this long without progress is a hang' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand check" -l leak-threshold -d 'Baseline growth (MiB/min, Theil–Sen) above which memory counts as leaking' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand check" -l leak-min-growth -d 'Least baseline growth in all (MiB) before a leak is called' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand check" -l leak-min-span -d 'Least time the readings must span before a leak is called' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand check" -l progress-cpu -d 'CPU% over the window at or below which a worker makes no progress' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand check" -l history -d 'Also judge workers by the snapshots in this directory (memory trend, frozen CPU time)' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand check" -l probe -d 'Send the server at URL (http://HOST:PORT[/PATH]) one OpenAI-compatible completion of one token, deadline --hung-after: no answer while its CPU and GPU stay idle is a hang, an answer shows generation works. It costs the server one generation (watch: each round); never sent by default' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand check" -l probe-model -d 'The `model` the probe names. Left out by default: mlx_lm.server then uses the model it was started with (naming another makes it load that one); for servers that require a model name' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand check" -l textfile -d 'Also write DIR/mlsdiag.prom (Prometheus text format) for node_exporter\'s textfile collector' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand check" -l color -d 'When to colour tables; NO_COLOR in the environment turns colour off in auto mode' -r -f -a "auto\t''
always\t''
never\t''"
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand check" -l fixture -d 'Read processes from a recording (`mlsdiag record`) instead of the live OS' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand check" -l no-registry -d 'There is no orchestrator: read no registry, judge every worker found on its own'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand check" -l json -d 'Print one JSON document (with schema_version) instead of tables'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand check" -s h -l help -d 'Print help'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l pattern -d 'Regex matched against each process\'s full command line [default: MLS\'s workers (mlx-server-v3), known MLX servers (mlx_lm.server, …) and every process with MLX loaded]' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l registry -d 'The orchestrator\'s worker registry (JSON); none at the default path = no orchestrator' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l log -d 'MLS server log; in-flight requests in it are what proves a hang' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l window -d 'Sampling window for CPU%, thread states and memory growth' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l leak-window -d 'Window for the memory trend, when longer than --window' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l hung-after -d 'A request in flight this long without progress is a hang' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l leak-threshold -d 'Baseline growth (MiB/min, Theil–Sen) above which memory counts as leaking' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l leak-min-growth -d 'Least baseline growth in all (MiB) before a leak is called' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l leak-min-span -d 'Least time the readings must span before a leak is called' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l progress-cpu -d 'CPU% over the window at or below which a worker makes no progress' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l history -d 'Also judge workers by the snapshots in this directory (memory trend, frozen CPU time)' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l probe -d 'Send the server at URL (http://HOST:PORT[/PATH]) one OpenAI-compatible completion of one token, deadline --hung-after: no answer while its CPU and GPU stay idle is a hang, an answer shows generation works. It costs the server one generation (watch: each round); never sent by default' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l probe-model -d 'The `model` the probe names. Left out by default: mlx_lm.server then uses the model it was started with (naming another makes it load that one); for servers that require a model name' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l interval -d 'Time from the start of one round to the start of the next' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l rounds -d 'Stop after N rounds (default: until interrupted)' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l leak-span -d 'How far back the memory series kept across rounds reaches (leak trend)' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l dir -d 'Snapshot directory for first detections (default as for `snapshot`)' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l tail -d 'Log lines kept in each snapshot (with --log)' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l on-finding -d 'Run this (with sh -c) on each new finding: the finding as JSON on stdin, and MLSDIAG_PID, MLSDIAG_VERDICT, MLSDIAG_WORKER, MLSDIAG_SNAPSHOT in the environment' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l hook-timeout -d 'A hook still running after this is killed' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l grace -d 'Time between SIGTERM and SIGKILL for --restart-hung' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l textfile -d 'Rewrite DIR/mlsdiag.prom each round (node_exporter textfile collector)' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l listen -d 'Serve Prometheus metrics on http://ADDR/metrics (PORT or HOST:PORT; host defaults to 127.0.0.1)' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l color -d 'When to colour tables; NO_COLOR in the environment turns colour off in auto mode' -r -f -a "auto\t''
always\t''
never\t''"
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l fixture -d 'Read processes from a recording (`mlsdiag record`) instead of the live OS' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l no-registry -d 'There is no orchestrator: read no registry, judge every worker found on its own'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l no-snapshot -d 'Take no snapshots'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l restart-hung -d 'End a hung worker (SIGTERM, then SIGKILL after --grace) once its snapshot is on disk'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -l json -d 'Print one JSON document (with schema_version) instead of tables'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand watch" -s h -l help -d 'Print help'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l pattern -d 'Regex matched against each process\'s full command line [default: MLS\'s workers (mlx-server-v3), known MLX servers (mlx_lm.server, …) and every process with MLX loaded]' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l registry -d 'The orchestrator\'s worker registry (JSON); none at the default path = no orchestrator' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l log -d 'MLS server log; in-flight requests in it are what proves a hang' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l window -d 'Sampling window for CPU%, thread states and memory growth' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l leak-window -d 'Window for the memory trend, when longer than --window' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l hung-after -d 'A request in flight this long without progress is a hang' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l leak-threshold -d 'Baseline growth (MiB/min, Theil–Sen) above which memory counts as leaking' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l leak-min-growth -d 'Least baseline growth in all (MiB) before a leak is called' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l leak-min-span -d 'Least time the readings must span before a leak is called' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l progress-cpu -d 'CPU% over the window at or below which a worker makes no progress' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l history -d 'Also judge workers by the snapshots in this directory (memory trend, frozen CPU time)' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l probe -d 'Send the server at URL (http://HOST:PORT[/PATH]) one OpenAI-compatible completion of one token, deadline --hung-after: no answer while its CPU and GPU stay idle is a hang, an answer shows generation works. It costs the server one generation (watch: each round); never sent by default' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l probe-model -d 'The `model` the probe names. Left out by default: mlx_lm.server then uses the model it was started with (naming another makes it load that one); for servers that require a model name' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l interval -d 'Time from the start of one round to the start of the next' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l leak-span -d 'How far back the memory series kept across rounds reaches (leak trend)' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l dir -d 'Where `S` saves a snapshot (default as for `snapshot`)' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l tail -d 'Log lines kept in a snapshot taken with `S` (with --log)' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l threads-window -d 'How long `t` samples each thread\'s CPU' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l color -d 'When to colour tables; NO_COLOR in the environment turns colour off in auto mode' -r -f -a "auto\t''
always\t''
never\t''"
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l fixture -d 'Read processes from a recording (`mlsdiag record`) instead of the live OS' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l no-registry -d 'There is no orchestrator: read no registry, judge every worker found on its own'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l once -d 'Print one frame to stdout (COLUMNS wide, 120 off a terminal) and exit with check\'s exit code'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -l json -d 'Print one JSON document (with schema_version) instead of tables'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand top" -s h -l help -d 'Print help'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand fleet" -l hosts -d 'Read hosts from FILE, one per line (# comments)' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand fleet" -l ssh-config -d 'ssh client configuration file (ssh -F)' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand fleet" -l ssh-option -d 'Extra ssh option (ssh -o), repeatable' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand fleet" -l connect-timeout -d 'How long ssh may take to connect (its ConnectTimeout, whole seconds)' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand fleet" -l timeout -d 'A host that has not answered after this is UNKNOWN (its ssh is killed)' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand fleet" -l jobs -d 'Hosts checked at once' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand fleet" -l remote-command -d 'The mlsdiag command on the remote hosts' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand fleet" -l color -d 'When to colour tables; NO_COLOR in the environment turns colour off in auto mode' -r -f -a "auto\t''
always\t''
never\t''"
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand fleet" -l fixture -d 'Read processes from a recording (`mlsdiag record`) instead of the live OS' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand fleet" -l json -d 'Print one JSON document (with schema_version) instead of tables'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand fleet" -s h -l help -d 'Print help'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand threads" -l window -d 'Window over which per-thread CPU% is measured' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand threads" -l color -d 'When to colour tables; NO_COLOR in the environment turns colour off in auto mode' -r -f -a "auto\t''
always\t''
never\t''"
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand threads" -l fixture -d 'Read processes from a recording (`mlsdiag record`) instead of the live OS' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand threads" -l json -d 'Print one JSON document (with schema_version) instead of tables'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand threads" -s h -l help -d 'Print help'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand fds" -l color -d 'When to colour tables; NO_COLOR in the environment turns colour off in auto mode' -r -f -a "auto\t''
always\t''
never\t''"
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand fds" -l fixture -d 'Read processes from a recording (`mlsdiag record`) instead of the live OS' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand fds" -l no-peers -d 'Do not search other processes for the peers of pipes and unix sockets'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand fds" -l json -d 'Print one JSON document (with schema_version) instead of tables'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand fds" -s h -l help -d 'Print help'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand stacks" -l faulthandler -d 'The worker\'s faulthandler dump file (default: the registry\'s field `faulthandler` for this PID, else the module\'s file in the per-user directory)' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand stacks" -l registry -d 'The orchestrator\'s worker registry, read for the dump file\'s path' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand stacks" -l color -d 'When to colour tables; NO_COLOR in the environment turns colour off in auto mode' -r -f -a "auto\t''
always\t''
never\t''"
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand stacks" -l fixture -d 'Read processes from a recording (`mlsdiag record`) instead of the live OS' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand stacks" -l signal -d 'Send SIGUSR1 to ask a faulthandler-armed worker for a Python dump (never by default)'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand stacks" -l no-native -d 'Do not run macOS `sample` (it suspends the worker briefly at each sample)'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand stacks" -l json -d 'Print one JSON document (with schema_version) instead of tables'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand stacks" -s h -l help -d 'Print help'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand registry" -l pattern -d 'Regex matched against each process\'s full command line [default: MLS\'s workers (mlx-server-v3), known MLX servers (mlx_lm.server, …) and every process with MLX loaded]' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand registry" -l registry -d 'The orchestrator\'s worker registry (JSON); none at the default path = no orchestrator' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand registry" -l color -d 'When to colour tables; NO_COLOR in the environment turns colour off in auto mode' -r -f -a "auto\t''
always\t''
never\t''"
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand registry" -l fixture -d 'Read processes from a recording (`mlsdiag record`) instead of the live OS' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand registry" -l json -d 'Print one JSON document (with schema_version) instead of tables'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand registry" -s h -l help -d 'Print help'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand logs" -l format -d 'Built-in log format' -r -f -a "auto\t'Detect from the first lines'
mls\t'MLS orchestrator lines (Chat completion request:/Chat completion:/Worker timeout after)'
mlx-lm\t'mlx_lm.server (Prompt processing progress, HTTP access lines)'"
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand logs" -l format-file -d 'Your own format: a TOML file of named-capture regexes (see docs/log-formats.md)' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand logs" -l since -d 'Only events at or after this time (RFC 3339 or "YYYY-MM-DD HH:MM:SS" local)' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand logs" -l until -d 'Only events at or before this time' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand logs" -l worker -d 'Only this worker (name, or pid)' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand logs" -l bands -d 'Prompt-size band edges in characters (K = 1000)' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand logs" -l hung-after -d 'An unfinished request older than this at the end of the log is a hang trigger' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand logs" -l color -d 'When to colour tables; NO_COLOR in the environment turns colour off in auto mode' -r -f -a "auto\t''
always\t''
never\t''"
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand logs" -l fixture -d 'Read processes from a recording (`mlsdiag record`) instead of the live OS' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand logs" -l strict -d 'Report every line that is not understood, with its line number (exit 3 if any)'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand logs" -l jsonl -d 'One JSON event per line, as they are read, instead of the summary'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand logs" -l json -d 'Print one JSON document (with schema_version) instead of tables'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand logs" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand mem" -l pattern -d 'Regex matched against each process\'s full command line [default: MLS\'s workers (mlx-server-v3), known MLX servers (mlx_lm.server, …) and every process with MLX loaded]' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand mem" -l registry -d 'The orchestrator\'s worker registry (JSON); none at the default path = no orchestrator' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand mem" -l samples -d 'Number of readings; with more than one a series and trend are printed' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand mem" -l interval -d 'Time between readings' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand mem" -l leak-threshold -d 'Baseline growth (MiB/min, Theil–Sen) above which memory counts as leaking' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand mem" -l leak-min-growth -d 'Least baseline growth in all (MiB) before a leak is called' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand mem" -l leak-min-span -d 'Least time the readings must span before a leak is called' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand mem" -l color -d 'When to colour tables; NO_COLOR in the environment turns colour off in auto mode' -r -f -a "auto\t''
always\t''
never\t''"
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand mem" -l fixture -d 'Read processes from a recording (`mlsdiag record`) instead of the live OS' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand mem" -l json -d 'Print one JSON document (with schema_version) instead of tables'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand mem" -s h -l help -d 'Print help'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand demo" -l stop -d 'Stop a demo left running with --keep (its directory, as printed)' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand demo" -l window -d 'Sampling window of the diagnosis' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand demo" -l color -d 'When to colour tables; NO_COLOR in the environment turns colour off in auto mode' -r -f -a "auto\t''
always\t''
never\t''"
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand demo" -l fixture -d 'Read processes from a recording (`mlsdiag record`) instead of the live OS' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand demo" -l keep -d 'Leave the simulated server running and print how to inspect and stop it'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand demo" -l json -d 'Print one JSON document (with schema_version) instead of tables'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand demo" -s h -l help -d 'Print help'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l pattern -d 'Regex matched against each process\'s full command line [default: MLS\'s workers (mlx-server-v3), known MLX servers (mlx_lm.server, …) and every process with MLX loaded]' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l registry -d 'The orchestrator\'s worker registry (JSON); none at the default path = no orchestrator' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l log -d 'MLS server log; in-flight requests in it are what proves a hang' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l window -d 'Sampling window for CPU%, thread states and memory growth' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l leak-window -d 'Window for the memory trend, when longer than --window' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l hung-after -d 'A request in flight this long without progress is a hang' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l leak-threshold -d 'Baseline growth (MiB/min, Theil–Sen) above which memory counts as leaking' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l leak-min-growth -d 'Least baseline growth in all (MiB) before a leak is called' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l leak-min-span -d 'Least time the readings must span before a leak is called' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l progress-cpu -d 'CPU% over the window at or below which a worker makes no progress' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l history -d 'Also judge workers by the snapshots in this directory (memory trend, frozen CPU time)' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l probe -d 'Send the server at URL (http://HOST:PORT[/PATH]) one OpenAI-compatible completion of one token, deadline --hung-after: no answer while its CPU and GPU stay idle is a hang, an answer shows generation works. It costs the server one generation (watch: each round); never sent by default' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l probe-model -d 'The `model` the probe names. Left out by default: mlx_lm.server then uses the model it was started with (naming another makes it load that one); for servers that require a model name' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l dir -d 'Directory for the snapshots (default: $MLSDIAG_DIR, else ~/Library/Logs/mlsdiag on macOS, the XDG state directory on Linux)' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l keep-newest -d 'Keep only the newest N snapshots per worker PID (only mlsdiag\'s own files are deleted)' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l max-age -d 'Delete mlsdiag\'s snapshots older than this (e.g. 14d)' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l tail -d 'Log lines kept in each snapshot (with --log)' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l color -d 'When to colour tables; NO_COLOR in the environment turns colour off in auto mode' -r -f -a "auto\t''
always\t''
never\t''"
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l fixture -d 'Read processes from a recording (`mlsdiag record`) instead of the live OS' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l no-registry -d 'There is no orchestrator: read no registry, judge every worker found on its own'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l quiet -d 'Print nothing when every worker is healthy (for cron)'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l only-findings -d 'Only snapshot workers that are not healthy (`watch --on-finding CMD` is a hook: another flag)'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -l json -d 'Print one JSON document (with schema_version) instead of tables'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand snapshot" -s h -l help -d 'Print help'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand history" -l dir -d 'Snapshot directory (default as for `snapshot`)' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand history" -l pid -d 'Only this worker PID' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand history" -l hung-after -d 'CPU time frozen this long with a request in flight is a hang' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand history" -l leak-threshold -d 'Baseline growth (MiB/min, Theil–Sen) above which memory counts as leaking' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand history" -l leak-min-growth -d 'Least baseline growth in all (MiB) before a leak is called' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand history" -l leak-min-span -d 'Least time the readings must span before a leak is called' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand history" -l color -d 'When to colour tables; NO_COLOR in the environment turns colour off in auto mode' -r -f -a "auto\t''
always\t''
never\t''"
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand history" -l fixture -d 'Read processes from a recording (`mlsdiag record`) instead of the live OS' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand history" -l json -d 'Print one JSON document (with schema_version) instead of tables'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand history" -s h -l help -d 'Print help'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand postmortem" -l log -d 'The server log, for the timeline, the trigger and the request counts' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand postmortem" -s o -l output -d 'Write the report to this file instead of stdout' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand postmortem" -l color -d 'When to colour tables; NO_COLOR in the environment turns colour off in auto mode' -r -f -a "auto\t''
always\t''
never\t''"
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand postmortem" -l fixture -d 'Read processes from a recording (`mlsdiag record`) instead of the live OS' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand postmortem" -l force -d 'Replace an existing --output file'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand postmortem" -l json -d 'Print one JSON document (with schema_version) instead of tables'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand postmortem" -s h -l help -d 'Print help'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -l endpoint -d 'OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1/chat/completions' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -l model -d 'MLX checkpoint directory to run through the reference loop (needs mlsdiag-runner)' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -l prompt -d 'A prompt to send as one user message' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -l requests -d 'Captured requests: one OpenAI chat-completion body (JSON) per line' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -s n -l runs -d 'Number of runs (requests sent, cycling through the file)' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -l parallel -d 'Requests in flight at once (with --model: runner processes)' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -l stall -d 'No new token for this long is a hang' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -l max-tokens -d '`max_tokens` for requests that do not set it' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -l target-rate -d 'The rate to plan for when no hang is seen (the incident\'s 1 in 318)' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -l out -d 'Where stall snapshots (and, with --model, runs.log) go (default: ./mlsdiag-repro-<time>)' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -l model-name -d '`model` field to send to the endpoint' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -l log -d 'The server log, saved with each stall snapshot' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -l pattern -d 'Regex matched against each process\'s full command line [default: MLS\'s workers (mlx-server-v3), known MLX servers (mlx_lm.server, …) and every process with MLX loaded]' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -l registry -d 'The orchestrator\'s worker registry (JSON); none at the default path = no orchestrator' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -l load-timeout -d 'How long a runner may take to load the checkpoint' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -l temperature -d 'Sampling temperature for requests that do not set one (0 = greedy)' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -l top-p -d 'Nucleus sampling for requests that do not set `top_p`' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -l seed -d 'Sampling seed for requests that do not set `seed` (the same for every run)' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -l inject-hang -d '(testing) make the runner block forever in run RUN after K tokens' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -l color -d 'When to colour tables; NO_COLOR in the environment turns colour off in auto mode' -r -f -a "auto\t''
always\t''
never\t''"
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -l fixture -d 'Read processes from a recording (`mlsdiag record`) instead of the live OS' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -l keep-hung -d 'Leave a hung runner alive and print its PID, instead of killing it'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -l json -d 'Print one JSON document (with schema_version) instead of tables'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand repro" -s h -l help -d 'Print help'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand record" -l pattern -d 'Regex matched against each process\'s full command line [default: MLS\'s workers (mlx-server-v3), known MLX servers (mlx_lm.server, …) and every process with MLX loaded]' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand record" -l registry -d 'The orchestrator\'s worker registry (JSON); none at the default path = no orchestrator' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand record" -s o -l output -d 'The recording to create (never overwritten)' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand record" -l samples -d 'Number of readings of each process' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand record" -l interval -d 'Time between readings' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand record" -l note -d 'Free text saved with the recording (machine, incident, how it was made)' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand record" -l color -d 'When to colour tables; NO_COLOR in the environment turns colour off in auto mode' -r -f -a "auto\t''
always\t''
never\t''"
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand record" -l fixture -d 'Read processes from a recording (`mlsdiag record`) instead of the live OS' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand record" -l json -d 'Print one JSON document (with schema_version) instead of tables'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand record" -s h -l help -d 'Print help'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand run" -l watchdog -d 'No progress for this long during a generation: dump every thread\'s stack into the worker\'s faulthandler file (once per stall)' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand run" -l state-dir -d 'Keep the record here instead of /tmp/mlsdiag-UID (`check` then needs the registry to find it)' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand run" -l color -d 'When to colour tables; NO_COLOR in the environment turns colour off in auto mode' -r -f -a "auto\t''
always\t''
never\t''"
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand run" -l fixture -d 'Read processes from a recording (`mlsdiag record`) instead of the live OS' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand run" -l watchdog-exit -d 'After the watchdog\'s dump, exit (status 1) unless every generation in flight only waits on its client'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand run" -l json -d 'Print one JSON document (with schema_version) instead of tables'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand run" -s h -l help -d 'Print help'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand completions" -l color -d 'When to colour tables; NO_COLOR in the environment turns colour off in auto mode' -r -f -a "auto\t''
always\t''
never\t''"
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand completions" -l fixture -d 'Read processes from a recording (`mlsdiag record`) instead of the live OS' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand completions" -l json -d 'Print one JSON document (with schema_version) instead of tables'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand completions" -s h -l help -d 'Print help'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand man" -l color -d 'When to colour tables; NO_COLOR in the environment turns colour off in auto mode' -r -f -a "auto\t''
always\t''
never\t''"
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand man" -l fixture -d 'Read processes from a recording (`mlsdiag record`) instead of the live OS' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand man" -l list -d 'List the subcommands that have a page, one a line'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand man" -l json -d 'Print one JSON document (with schema_version) instead of tables'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand man" -s h -l help -d 'Print help'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand __demo-orchestrator" -l dir -d 'Private directory for the socket, registry, log and state file' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand __demo-orchestrator" -l tag -d 'Unique tag in every process name of this simulation' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand __demo-orchestrator" -l name -d 'The orchestrator\'s own name, so that it matches the discovery pattern like MLS\'s does' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand __demo-orchestrator" -l color -d 'When to colour tables; NO_COLOR in the environment turns colour off in auto mode' -r -f -a "auto\t''
always\t''
never\t''"
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand __demo-orchestrator" -l fixture -d 'Read processes from a recording (`mlsdiag record`) instead of the live OS' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand __demo-orchestrator" -l detached -d 'Keep running when the process that started it exits (demo --keep)'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand __demo-orchestrator" -l json -d 'Print one JSON document (with schema_version) instead of tables'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand __demo-orchestrator" -s h -l help -d 'Print help'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand __demo-worker" -l role -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand __demo-worker" -l name -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand __demo-worker" -l socket -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand __demo-worker" -l shm -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand __demo-worker" -l orphan-name -d 'For the orphan launcher: the orphan\'s own name' -r
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand __demo-worker" -l color -d 'When to colour tables; NO_COLOR in the environment turns colour off in auto mode' -r -f -a "auto\t''
always\t''
never\t''"
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand __demo-worker" -l fixture -d 'Read processes from a recording (`mlsdiag record`) instead of the live OS' -r -F
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand __demo-worker" -l json -d 'Print one JSON document (with schema_version) instead of tables'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand __demo-worker" -s h -l help -d 'Print help'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand help; and not __fish_seen_subcommand_from check watch top fleet threads fds stacks registry logs mem demo snapshot history postmortem repro record run completions man __demo-orchestrator __demo-worker help" -f -a "check" -d 'Classify every worker: healthy, hung, crashed, orphan or leaking, with the evidence'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand help; and not __fish_seen_subcommand_from check watch top fleet threads fds stacks registry logs mem demo snapshot history postmortem repro record run completions man __demo-orchestrator __demo-worker help" -f -a "watch" -d 'Check every --interval, print verdict changes, snapshot and alert on findings, export metrics'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand help; and not __fish_seen_subcommand_from check watch top fleet threads fds stacks registry logs mem demo snapshot history postmortem repro record run completions man __demo-orchestrator __demo-worker help" -f -a "top" -d 'The live view: the workers as a tree with their verdicts as they form, the evidence, stacks, threads and fds'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand help; and not __fish_seen_subcommand_from check watch top fleet threads fds stacks registry logs mem demo snapshot history postmortem repro record run completions man __demo-orchestrator __demo-worker help" -f -a "fleet" -d 'Run `mlsdiag check` on many hosts over ssh and merge the results'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand help; and not __fish_seen_subcommand_from check watch top fleet threads fds stacks registry logs mem demo snapshot history postmortem repro record run completions man __demo-orchestrator __demo-worker help" -f -a "threads" -d 'Every thread of a process: state, CPU, what it waits on, grouped by lock'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand help; and not __fish_seen_subcommand_from check watch top fleet threads fds stacks registry logs mem demo snapshot history postmortem repro record run completions man __demo-orchestrator __demo-worker help" -f -a "fds" -d 'Every descriptor of a process: pipes, sockets with their peers, shared memory, files'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand help; and not __fish_seen_subcommand_from check watch top fleet threads fds stacks registry logs mem demo snapshot history postmortem repro record run completions man __demo-orchestrator __demo-worker help" -f -a "stacks" -d 'Where each thread is stuck (Python and native frames, lock waits) and known MLX hangs it matches'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand help; and not __fish_seen_subcommand_from check watch top fleet threads fds stacks registry logs mem demo snapshot history postmortem repro record run completions man __demo-orchestrator __demo-worker help" -f -a "registry" -d 'The worker registry joined with the live processes'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand help; and not __fish_seen_subcommand_from check watch top fleet threads fds stacks registry logs mem demo snapshot history postmortem repro record run completions man __demo-orchestrator __demo-worker help" -f -a "logs" -d 'Request timeline, throughput, anomalies and the hang trigger from server logs'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand help; and not __fish_seen_subcommand_from check watch top fleet threads fds stacks registry logs mem demo snapshot history postmortem repro record run completions man __demo-orchestrator __demo-worker help" -f -a "mem" -d 'System memory and pressure, per-worker memory and its trend'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand help; and not __fish_seen_subcommand_from check watch top fleet threads fds stacks registry logs mem demo snapshot history postmortem repro record run completions man __demo-orchestrator __demo-worker help" -f -a "demo" -d 'Start a simulated MLS with misbehaving workers and diagnose it'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand help; and not __fish_seen_subcommand_from check watch top fleet threads fds stacks registry logs mem demo snapshot history postmortem repro record run completions man __demo-orchestrator __demo-worker help" -f -a "snapshot" -d 'Save each worker\'s full diagnosis as text and JSON (for cron, history and postmortems)'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand help; and not __fish_seen_subcommand_from check watch top fleet threads fds stacks registry logs mem demo snapshot history postmortem repro record run completions man __demo-orchestrator __demo-worker help" -f -a "history" -d 'Trends across saved snapshots: leaks, frozen CPU time, restarts'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand help; and not __fish_seen_subcommand_from check watch top fleet threads fds stacks registry logs mem demo snapshot history postmortem repro record run completions man __demo-orchestrator __demo-worker help" -f -a "postmortem" -d 'Write the incident postmortem (Markdown) from snapshots and the server log'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand help; and not __fish_seen_subcommand_from check watch top fleet threads fds stacks registry logs mem demo snapshot history postmortem repro record run completions man __demo-orchestrator __demo-worker help" -f -a "repro" -d 'Replay requests many times against a live server or the reference MLX loop; catch and snapshot stalls'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand help; and not __fish_seen_subcommand_from check watch top fleet threads fds stacks registry logs mem demo snapshot history postmortem repro record run completions man __demo-orchestrator __demo-worker help" -f -a "record" -d 'Save readings, threads, descriptors and memory of workers to a JSON recording'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand help; and not __fish_seen_subcommand_from check watch top fleet threads fds stacks registry logs mem demo snapshot history postmortem repro record run completions man __demo-orchestrator __demo-worker help" -f -a "run" -d 'Start a stock server (mlx_lm.server …) with the token record wired into mlx-lm, found with no registry'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand help; and not __fish_seen_subcommand_from check watch top fleet threads fds stacks registry logs mem demo snapshot history postmortem repro record run completions man __demo-orchestrator __demo-worker help" -f -a "completions" -d 'Print a shell completion script'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand help; and not __fish_seen_subcommand_from check watch top fleet threads fds stacks registry logs mem demo snapshot history postmortem repro record run completions man __demo-orchestrator __demo-worker help" -f -a "man" -d 'Print the man page (roff): mlsdiag(1), or a subcommand\'s, mlsdiag-SUBCOMMAND(1)'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand help; and not __fish_seen_subcommand_from check watch top fleet threads fds stacks registry logs mem demo snapshot history postmortem repro record run completions man __demo-orchestrator __demo-worker help" -f -a "__demo-orchestrator" -d '(internal) the demo\'s orchestrator process'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand help; and not __fish_seen_subcommand_from check watch top fleet threads fds stacks registry logs mem demo snapshot history postmortem repro record run completions man __demo-orchestrator __demo-worker help" -f -a "__demo-worker" -d '(internal) one demo worker process'
complete -c mlsdiag -n "__fish_mlsdiag_using_subcommand help; and not __fish_seen_subcommand_from check watch top fleet threads fds stacks registry logs mem demo snapshot history postmortem repro record run completions man __demo-orchestrator __demo-worker help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
