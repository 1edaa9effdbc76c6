using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;

namespace Nova.Workflow.Redis;

/// <summary>
/// A Lua script sent once per server: EVALSHA by its hash, EVAL (which caches it) only after a NOSCRIPT. The hash comes
/// from the server's SCRIPT LOAD on first use, so the process computes no SHA-1 (and does not map the native crypto
/// library, about 4 MB of resident memory, for it).
/// </summary>
internal sealed class RedisScript(string source)
{
    private readonly string _source = source;
    private byte[]? _hash;

    public async Task<RedisResult> EvaluateAsync(IDatabaseAsync database, RedisKey[] keys, RedisValue[] values)
    {
        var hash = _hash;
        if (hash is null)
        {
            // Any server names the script by the same hash; one that has not seen it answers NOSCRIPT below.
            var loaded = await database.ExecuteAsync("SCRIPT", "LOAD", _source).ConfigureAwait(false);
            hash = _hash = Convert.FromHexString((string)loaded!);
        }

        try
        {
            return await database.ScriptEvaluateAsync(hash, keys, values).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            return await database.ScriptEvaluateAsync(_source, keys, values).ConfigureAwait(false);
        }
    }
}

/// <summary>The provider's scripts, read once from the embedded Lua files. State scripts share the prelude.</summary>
internal static class RedisScripts
{
    private static readonly string Prelude = Read("prelude");
    private static readonly string Unfused = "local FUSED = false\nlocal continued\nlocal function fused_enqueue() end\n";
    private const string NowExpression = "(function() local t = redis.call('TIME') return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) end)()";
    private static readonly string BindKeys = "bind(KEYS[1], KEYS[2], KEYS[3])\n";
    private static readonly string QueueRecords = Read("q_record") + "\n";
    private static readonly string DequeueFunction = QueueRecords + Read("q_dequeue");

    public static readonly RedisScript Create = new(Library(false, "create") + BindKeys + "return create(1, tonumber(ARGV[1]), 0, KEYS[4])\n");
    public static readonly RedisScript CreateFused = new(Library(true, "create") + BindKeys + "return create(1, tonumber(ARGV[1]), 4, KEYS[4])\n");
    public static readonly RedisScript Start = State("start");
    public static readonly RedisScript Complete = new(Library(false, "complete") + BindKeys + "return complete(0, 0)\n");
    public static readonly RedisScript CompleteMany = new(Library(true, "complete") + Read("complete_many"));
    public static readonly RedisScript Heartbeat = State("heartbeat");
    public static readonly RedisScript Release = State("release");
    public static readonly RedisScript Control = State("control");
    public static readonly RedisScript Enqueue = new(QueueRecords + Read("q_enqueue"));
    public static readonly RedisScript Dequeue = new(DequeueFunction + "\nreturn dequeue(" + NowExpression + ", 1, tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), 4)\n");
    public static readonly RedisScript Claim = new(Prelude + "\n" + DequeueFunction + "\n" + Read("claim"));
    public static readonly RedisScript Ack = new(QueueRecords + Read("q_ack"));
    public static readonly RedisScript Extend = new(QueueRecords + Read("q_extend"));
    public static readonly RedisScript ReleaseJob = new(QueueRecords + Read("q_release"));
    public static readonly RedisScript Idle = new(Read("q_idle"));
    public static readonly RedisScript Rate = new(Read("rate"));
    public static readonly RedisScript DeadLetters = new(Read("dlq"));
    public static readonly RedisScript Snapshot = new(Read("snapshot"));

    private static RedisScript State(string name) => new(Prelude + "\n" + Unfused + BindKeys + Read(name));

    /// <summary>The prelude, the fused enqueue (or its stand-in) and the function <paramref name="name"/>.lua defines.</summary>
    private static string Library(bool fused, string name) => Prelude + "\n" + (fused ? QueueRecords + Read("fused") : Unfused) + "\n" + Read(name) + "\n";

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

/// <summary>The keys of one queue.</summary>
internal sealed class QueueKeys(string tag)
{
    public RedisKey Ready { get; } = tag + ":ready";
    public RedisKey Age { get; } = tag + ":age";
    public RedisKey Delayed { get; } = tag + ":delayed";
    public RedisKey Leased { get; } = tag + ":leased";
    public RedisKey Jobs { get; } = tag + ":jobs";
    public RedisKey Meta { get; } = tag + ":meta";

    /// <summary>The six keys in the order the queue scripts take them (q_record.lua).</summary>
    public RedisKey[] All { get; } = [tag + ":ready", tag + ":age", tag + ":delayed", tag + ":leased", tag + ":jobs", tag + ":meta"];
}
