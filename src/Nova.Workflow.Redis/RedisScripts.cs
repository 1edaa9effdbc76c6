using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;

namespace Nova.Workflow.Redis;

/// <summary>
/// One function of the provider's Redis function library (FUNCTION LOAD, FCALL). A library's code runs once, when a server
/// loads it, so a call pays only for its own work: as EVALSHA scripts, every call re-ran the shared code that defines the
/// functions, about 15 µs of server time per call, more than a whole completion's commands. A server that has no functions
/// (Redis before 7.0), or lacks the library and does not let this user load it, gets each function as a script instead.
/// </summary>
internal sealed class RedisScript(RedisLibrary library, string name)
{
    public string Name { get; } = library.Prefix + name;

    public Task<RedisResult> EvaluateAsync(IDatabaseAsync database, RedisKey[] keys, RedisValue[] values) =>
        library.CallAsync(database, Name, keys, values);
}

/// <summary>
/// The provider's function library. Its name, and each function's, carries a hash of its code: processes of different
/// versions can share a server, each calling its own functions. A server that does not have it (first use, a restart
/// without persistence, FUNCTION FLUSH) answers "Function not found": the library is then loaded, once per connection at a
/// time, on every primary of that connection, and the call made again. Where FUNCTION LOAD is unknown (Redis before 7.0)
/// or refused to this user (an ACL), a connection runs each function as a script: the shared code, then the function's
/// body (EVALSHA, EVAL after a NOSCRIPT), paying the shared code's cost on every call.
/// </summary>
internal sealed class RedisLibrary
{
    // What this process has loaded, per connection: an app may hold several, to several servers.
    private readonly ConditionalWeakTable<IConnectionMultiplexer, LoadState> _states = new();

    // Per function name: its body, and the script made of it (for servers without functions: made when first needed, as
    // each is the whole shared code again, ~150 KB on the large object heap) and that script's hash once a server named it.
    private readonly string _code;
    private readonly Dictionary<string, (bool Fused, string Body)> _functions = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _scripts = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte[]> _scriptHashes = new(StringComparer.Ordinal);

    /// <param name="code">What every function shares (it declares KEYS and ARGV, and begin()).</param>
    /// <param name="functions">Per function: its name, whether its transitions are fused, its body, its flags.</param>
    public RedisLibrary(string code, IReadOnlyList<(string Name, bool Fused, string Body, string Flags)> functions)
    {
        var library = new StringBuilder(code);

        // Flags: the snapshot only reads (no-writes: it still answers on a server out of memory or unable to persist); ack,
        // extend and dead letters may run out of memory too (allow-oom), so a full server can still drain its queues. Any
        // other function is refused then, as a write.
        foreach (var (name, fused, body, flags) in functions)
        {
            library.Append("redis.register_function{function_name = 'NOVA_FN_").Append(name).Append("', flags = {").Append(flags)
                .Append("}, callback = function(keys, args)\n")
                .Append("begin(keys, args, ").Append(fused ? "true" : "false").Append(")\n")
                .Append(body).Append("\nend}\n");
        }

        // FNV-1a over the code, with the name left out: a change anywhere gives a new library, and new function names.
        var text = library.ToString();
        var hash = 14695981039346656037UL;
        foreach (var c in text)
        {
            hash = (hash ^ c) * 1099511628211UL;
        }

        Prefix = $"nova_{hash:x16}_";
        Source = $"#!lua name=nova_{hash:x16}\n" + text.Replace("NOVA_FN_", Prefix, StringComparison.Ordinal);

        _code = code;
        foreach (var (name, fused, body, _) in functions)
        {
            _functions[Prefix + name] = (fused, body);
        }
    }

    /// <summary>The prefix of every function name (<c>nova_&lt;hash&gt;_</c>).</summary>
    public string Prefix { get; }

    /// <summary>The library's text, as FUNCTION LOAD takes it.</summary>
    public string Source { get; }

    public async Task<RedisResult> CallAsync(IDatabaseAsync database, string function, RedisKey[] keys, RedisValue[] values)
    {
        var args = new object[2 + keys.Length + values.Length];
        args[0] = function;
        args[1] = keys.Length;
        for (var k = 0; k < keys.Length; k++)
        {
            args[2 + k] = keys[k];
        }

        // Box() hands over the value's own string or number without a copy (a RedisValue boxed whole costs an object each);
        // a null value goes as the empty string, as EVALSHA sent it.
        for (var k = 0; k < values.Length; k++)
        {
            args[2 + keys.Length + k] = values[k].Box() ?? string.Empty;
        }

        // The library is loaded when a call finds it missing, not up front: another process of this version may have loaded it,
        // and loading it again would drop what it keeps between calls (the plans and numbers it caches), for every process.
        var redis = database.Multiplexer;
        var state = _states.GetValue(redis, static _ => new LoadState());
        for (var attempt = 1; ; attempt++)
        {
            if (state.ScriptsOnly)
            {
                return await EvaluateScriptAsync(database, function, keys, values).ConfigureAwait(false);
            }

            try
            {
                return await database.ExecuteAsync("FCALL", args).ConfigureAwait(false);
            }
            catch (RedisServerException ex) when (NoFunctions(ex))
            {
                // A server of this connection knows no FCALL or denies it to this user (one that came up after the load).
                state.ScriptsOnly = true;
            }
            catch (RedisServerException ex) when (attempt < 3 && ex.Message.StartsWith("ERR Function not found", StringComparison.Ordinal))
            {
                await LoadAsync(redis, state).ConfigureAwait(false);
            }
        }
    }

    private static bool NoFunctions(RedisServerException ex) =>
        ex.Message.Contains("unknown command", StringComparison.OrdinalIgnoreCase) || ex.Message.StartsWith("NOPERM", StringComparison.Ordinal);

    /// <summary>Loads the library on every connected primary; callers that arrive while a load runs wait for that one.</summary>
    private Task LoadAsync(IConnectionMultiplexer redis, LoadState state)
    {
        lock (state.Gate)
        {
            if (state.Loading is { IsCompleted: false } running)
            {
                return running;
            }

            return state.Loading = LoadCoreAsync(redis, state);
        }
    }

    private async Task LoadCoreAsync(IConnectionMultiplexer redis, LoadState state)
    {
        var servers = redis.GetServers().Where(s => s.IsConnected && !s.IsReplica).ToList();
        try
        {
            await Task.WhenAll(servers.Select(LoadOnAsync)).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (NoFunctions(ex))
        {
            state.ScriptsOnly = true;
        }
    }

    /// <summary>
    /// Loads the library on one server unless it has it: a library of this name is this code (the name carries its hash), so
    /// one another caller loaded meanwhile is kept as it is (no REPLACE).
    /// </summary>
    private async Task LoadOnAsync(IServer server)
    {
        try
        {
            await server.ExecuteAsync("FUNCTION", "LOAD", Source).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.Contains("already exists", StringComparison.Ordinal))
        {
        }
    }

    private async Task<RedisResult> EvaluateScriptAsync(IDatabaseAsync database, string function, RedisKey[] keys, RedisValue[] values)
    {
        var source = _scripts.GetOrAdd(function, static (name, library) => library.Script(name), this);
        if (!_scriptHashes.TryGetValue(function, out var hash))
        {
            // Any server names the script by the same hash; one that has not seen it answers NOSCRIPT below.
            var loaded = await database.ExecuteAsync("SCRIPT", "LOAD", source).ConfigureAwait(false);
            hash = _scriptHashes[function] = Convert.FromHexString((string)loaded!);
        }

        try
        {
            return await database.ScriptEvaluateAsync(hash, keys, values).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            return await database.ScriptEvaluateAsync(source, keys, values).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The function as a script. As a script the chunk's own KEYS and ARGV are taken before the shared code declares its
    /// locals of those names; Redis before 5.0 needs effects replication asked for, as begin() reads TIME before the writes.
    /// The functions' flags have no script form that older servers accept: as scripts, ack, extend and dead letters are
    /// refused on a full server.
    /// </summary>
    private string Script(string function)
    {
        var (fused, body) = _functions[function];
        return "if redis.replicate_commands then redis.replicate_commands() end\nlocal keys, args = KEYS, ARGV\n" + _code +
            "begin(keys, args, " + (fused ? "true" : "false") + ")\n" + body + "\n";
    }

    private sealed class LoadState
    {
        public Lock Gate { get; } = new();

        public Task? Loading { get; set; }

        /// <summary>The servers of this connection run the functions as scripts (no FUNCTION LOAD there).</summary>
        public bool ScriptsOnly { get; set; }
    }
}

/// <summary>
/// The provider's Redis functions, one library built from the embedded Lua files: the shared code (the prelude, the queue
/// records, the dequeue, the fused enqueue, completion and creation), then each function's body.
/// </summary>
internal static class RedisScripts
{
    private const string BindKeys = "bind(KEYS[1], KEYS[2], KEYS[3])\n";

    private static readonly (string Name, bool Fused, string Body, string Flags)[] Functions =
    [
        ("create", false, BindKeys + "return create(1, tonumber(ARGV[1]), 0, KEYS[4])", ""),
        ("create_fused", true, BindKeys + "return create(1, tonumber(ARGV[1]), 4, KEYS[4])", ""),
        ("create_many", true, Read("create_many"), ""),
        ("start", false, BindKeys + Read("start"), ""),
        ("complete", false, BindKeys + "return complete(0, 0, 0)", ""),
        ("complete_many", true, Read("complete_many"), ""),
        ("heartbeat", false, BindKeys + Read("heartbeat"), ""),
        ("release", false, BindKeys + Read("release"), ""),
        ("control", false, BindKeys + Read("control"), ""),
        ("enqueue", false, Read("q_enqueue"), ""),
        ("dequeue", false, "return dequeue(NOW, 1, tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), 4)", ""),
        ("claim", false, Read("claim"), ""),
        ("ack", false, Read("q_ack"), "'allow-oom'"),
        ("extend", false, Read("q_extend"), "'allow-oom'"),
        ("release_job", false, Read("q_release"), ""),
        ("idle", false, Read("q_idle"), ""),
        ("rate", false, Read("rate"), ""),
        ("dlq", false, Read("dlq"), "'allow-oom'"),
        ("snapshot", false, Read("snapshot"), "'no-writes'"),
    ];

    public static readonly RedisLibrary Library = new(SharedCode(), Functions);

    public static readonly RedisScript Create = new(Library, "create");
    public static readonly RedisScript CreateFused = new(Library, "create_fused");
    public static readonly RedisScript CreateMany = new(Library, "create_many");
    public static readonly RedisScript Start = new(Library, "start");
    public static readonly RedisScript Complete = new(Library, "complete");
    public static readonly RedisScript CompleteMany = new(Library, "complete_many");
    public static readonly RedisScript Heartbeat = new(Library, "heartbeat");
    public static readonly RedisScript Release = new(Library, "release");
    public static readonly RedisScript Control = new(Library, "control");
    public static readonly RedisScript Enqueue = new(Library, "enqueue");
    public static readonly RedisScript Dequeue = new(Library, "dequeue");
    public static readonly RedisScript Claim = new(Library, "claim");
    public static readonly RedisScript Ack = new(Library, "ack");
    public static readonly RedisScript Extend = new(Library, "extend");
    public static readonly RedisScript ReleaseJob = new(Library, "release_job");
    public static readonly RedisScript Idle = new(Library, "idle");
    public static readonly RedisScript Rate = new(Library, "rate");
    public static readonly RedisScript DeadLetters = new(Library, "dlq");
    public static readonly RedisScript Snapshot = new(Library, "snapshot");

    private static string SharedCode()
    {
        var code = new StringBuilder("local KEYS, ARGV\n");
        foreach (var part in (string[])["prelude", "q_record", "q_dequeue", "fused", "complete", "create", "entry"])
        {
            code.Append(Read(part)).Append('\n');
        }

        return code.ToString();
    }

    private static string Read(string name)
    {
        using var stream = typeof(RedisScripts).Assembly.GetManifestResourceStream($"Nova.Workflow.Redis.Lua.{name}.lua")
            ?? throw new InvalidOperationException($"Embedded script {name}.lua is missing.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}

/// <summary>
/// Key names. Every key of one execution shares the hash tag <c>{execution id}</c> and every key of
/// one queue the tag <c>{queue}</c>, so each script touches one slot and the layout holds on Redis Cluster.
/// </summary>
internal sealed class RedisKeys(string prefix)
{
    public string Prefix { get; } = prefix;

    public RedisKey[] Execution(Guid id)
    {
        var tag = $"{Prefix}:{{{id:N}}}";
        return [tag + ":x", tag + ":s", tag + ":h"];
    }

    /// <summary>A plan's static fields, shared by its executions on one server; named by their fingerprint.</summary>
    public RedisKey Plan(string fingerprint) => $"{Prefix}:plan:{fingerprint}";

    public RedisKey Idempotency(string key) =>
        $"{Prefix}:idem:{Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)))}";

    public RedisKey Rate(string handler) => $"{Prefix}:rate:{{{handler}}}";

    public RedisKey ExecutionIndex => $"{Prefix}:{{idx}}:execs";

    public RedisKey ActiveIndex => $"{Prefix}:{{idx}}:active";

    public RedisKey[] DeadLetters => [$"{Prefix}:{{dlq}}:z", $"{Prefix}:{{dlq}}:h"];

    public RedisChannel Events(Guid id) => RedisChannel.Literal($"{Prefix}:ev:{id:N}");

    public RedisChannel Wake(string queue) => RedisChannel.Literal($"{Prefix}:wake:{queue}");

    public RedisChannel Cancel => RedisChannel.Literal($"{Prefix}:cancel");

    /// <summary>
    /// A queue's keys. 'q2': the layout with one record per job (q_record.lua); jobs an earlier build queued under 'q' stay
    /// there for that build's workers, and are never misread as records.
    /// </summary>
    public QueueKeys Queue(string queue) => new($"{Prefix}:q2:{{{queue}}}");
}

/// <summary>The keys of one queue, in the order the queue functions take them (q_record.lua).</summary>
internal sealed class QueueKeys(string tag)
{
    public RedisKey[] All { get; } = [tag + ":ready", tag + ":age", tag + ":delayed", tag + ":leased", tag + ":jobs", tag + ":meta"];

    public RedisKey Ready => All[0];

    public RedisKey Delayed => All[2];

    public RedisKey Leased => All[3];

    public RedisKey Jobs => All[4];

    public RedisKey Meta => All[5];
}
