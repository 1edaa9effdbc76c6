using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Nova.Workflow.TestServers;

/// <summary>A redis-server on 127.0.0.1 in its own temp dir (no persistence), killed and removed on dispose.</summary>
public sealed class LocalRedis : IDisposable
{
    private readonly Process _process;
    private readonly string _dir;

    private LocalRedis(int port, string[] extra)
    {
        Port = port;
        _dir = TempDir("nova-redis");
        _process = LocalProcess.Start(
            "redis-server",
            ["--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", _dir, "--maxmemory-policy", "noeviction", .. extra],
            _dir);
    }

    public int Port { get; }

    public string ConnectionString => $"127.0.0.1:{Port},allowAdmin=true";

    /// <summary>Starts a server at <paramref name="port"/> (a free one when 0) with extra arguments (e.g. cluster mode).</summary>
    public static LocalRedis Start(int port = 0, params string[] extra) => new(port == 0 ? LocalProcess.FreePort() : port, extra);

    public void Dispose()
    {
        LocalProcess.Stop(_process);
        LocalProcess.Delete(_dir);
    }

    internal static string TempDir(string prefix)
    {
        var dir = Path.Combine(Path.GetTempPath(), prefix + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return dir;
    }
}

/// <summary>
/// PostgreSQL from the installed binaries: initdb and postgres run as the non-root <c>postgres</c> user in a
/// temp dir, on 127.0.0.1 at a free port (fsync on); stopped and removed on dispose.
/// </summary>
public sealed class LocalPostgres : IDisposable
{
    private readonly Process _process;
    private readonly string _dir;

    private LocalPostgres(string dir, int port, Process process)
    {
        _dir = dir;
        Port = port;
        _process = process;
    }

    public int Port { get; }

    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username=postgres;Database=postgres;Maximum Pool Size=100;Timeout=15";

    public static async Task<LocalPostgres> StartAsync()
    {
        var bin = Directory.GetDirectories("/usr/lib/postgresql").OrderDescending().Select(d => Path.Combine(d, "bin")).FirstOrDefault(d => File.Exists(Path.Combine(d, "initdb")))
            ?? throw new InvalidOperationException("PostgreSQL is not installed (apt-get install -y postgresql).");
        var dir = LocalRedis.TempDir("nova-pg");
        await LocalProcess.RunAsync("chown", "postgres", dir);
        var data = Path.Combine(dir, "data");
        await LocalProcess.RunAsync("runuser", "-u", "postgres", "--", Path.Combine(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8");
        var port = LocalProcess.FreePort();
        var process = LocalProcess.Start(
            "runuser",
            ["-u", "postgres", "--", Path.Combine(bin, "postgres"), "-D", data, "-p", port.ToString(CultureInfo.InvariantCulture), "-c", "listen_addresses=127.0.0.1", "-c", $"unix_socket_directories={dir}", "-c", "max_connections=300"],
            dir);
        return new LocalPostgres(dir, port, process);
    }

    public void Dispose()
    {
        LocalProcess.Stop(_process);
        LocalProcess.Delete(_dir);
    }
}

/// <summary>Reads a child process's output so it never blocks on a full pipe.</summary>
public static class ProcessOutput
{
    /// <summary>
    /// Drains stdout and stderr of a started process; with NOVA_TEST_WORKER_LOGS=&lt;dir&gt; they are kept in
    /// <c>&lt;dir&gt;/&lt;name&gt;-&lt;pid&gt;.log</c> (for diagnosing a crash test).
    /// </summary>
    public static void Drain(Process process, string name)
    {
        ArgumentNullException.ThrowIfNull(process);
        var logs = Environment.GetEnvironmentVariable("NOVA_TEST_WORKER_LOGS");
        var sink = logs is { Length: > 0 } ? TextWriter.Synchronized(new StreamWriter(Path.Combine(logs, $"{name}-{process.Id}.log")) { AutoFlush = true }) : null;
        process.OutputDataReceived += (_, e) => sink?.WriteLine(e.Data);
        process.ErrorDataReceived += (_, e) => sink?.WriteLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }
}

internal static class LocalProcess
{
    public static Process Start(string file, string[] args, string workingDirectory)
    {
        var info = new ProcessStartInfo(file) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException($"{file} did not start.");
        ProcessOutput.Drain(process, "server");
        return process;
    }

    public static async Task RunAsync(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var output = await process.StandardOutput.ReadToEndAsync() + await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed: {output}");
        }
    }

    public static void Stop(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }

        process.Dispose();
    }

    public static void Delete(string dir)
    {
        try
        {
            Directory.Delete(dir, true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
