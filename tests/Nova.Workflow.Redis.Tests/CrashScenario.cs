using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Nova.Workflow.Conformance;
using Xunit;

namespace Nova.Workflow.Redis.Tests;

/// <summary>
/// The crash scenario shared by the providers: three worker processes (the sample worker host),
/// 1,000 executions of the 10-node chaos DAG whose handler logs every run, a disruption once a quarter
/// of the runs are done, then: every execution succeeds, every node has exactly one committed completion,
/// and handlers ran twice only for nodes in flight at the disruption.
/// </summary>
public static class CrashScenario
{
    public const int Executions = 1000;
    public const int Concurrency = 16;

    /// <param name="environment">The worker environment for a worker name (storage, connection, log).</param>
    /// <param name="configureClient">Points the test's own client (no worker) at the same storage.</param>
    /// <param name="disrupt">The disruption; gets the workers and a way to start one more.</param>
    /// <param name="suspects">Worker names whose in-flight nodes may legitimately run twice.</param>
    public static async Task RunAsync(
        Func<string, Dictionary<string, string>> environment,
        Action<NovaWorkflowBuilder> configureClient,
        Func<IReadOnlyList<SampleProcess>, Func<string, SampleProcess>, Task> disrupt,
        Func<string, bool> suspects,
        int maxDuplicates)
    {
        var log = Path.Combine(Path.GetTempPath(), "chaos" + Guid.NewGuid().ToString("N")[..8] + ".log");
        Dictionary<string, string> Env(string name)
        {
            var env = environment(name);
            env["Nova__Concurrency"] = Concurrency.ToString(System.Globalization.CultureInfo.InvariantCulture);
            env["Nova__Options__LeaseDuration"] = "00:00:03";
            env["Nova__Options__HeartbeatInterval"] = "00:00:01";
            env["Nova__Options__SweepInterval"] = "00:00:01";
            env["Nova__Options__WorkerId"] = name;
            env["NOVA_CHAOS_LOG"] = log;
            env["NOVA_WORKER_NAME"] = name;
            return env;
        }

        var workers = new List<SampleProcess>();
        SampleProcess Start(string name)
        {
            var process = SampleProcess.Start("Nova.Workflow.Samples.Worker", Env(name));
            workers.Add(process);
            return process;
        }

        Start("w1");
        Start("w2");
        Start("w3");
        try
        {
            var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
            builder.Services.AddLogging();
            builder.Services.AddNovaWorkflows(nova =>
            {
                configureClient(nova);
                Samples.SampleWorkflows.AddSampleWorkflows(nova);
            });
            using var client = builder.Build();
            await client.StartAsync();
            var nova = client.Services.GetRequiredService<IWorkflowClient>();
            var ids = new List<Guid>();
            for (var batch = 0; batch < Executions / 100; batch++)
            {
                ids.AddRange(await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => nova.StartAsync("chaos"))));
            }

            await Eventually.TrueAsync(() => Lines(log).Length >= Executions * 10 / 4, "a quarter of the node runs", TimeSpan.FromSeconds(120));
            await disrupt([.. workers], Start);

            var pending = new HashSet<Guid>(ids);
            await Eventually.TrueAsync(
                async () =>
                {
                    foreach (var id in pending.ToList())
                    {
                        if ((await nova.GetAsync(id)).IsFinished)
                        {
                            pending.Remove(id);
                        }
                    }

                    return pending.Count == 0;
                },
                "every execution to finish",
                TimeSpan.FromSeconds(180));

            foreach (var id in ids)
            {
                Assert.Equal(ExecutionStatus.Succeeded, (await nova.GetAsync(id)).Status);
                var committed = (await nova.GetHistoryAsync(id)).Where(r => r.Status == NodeRunStatus.Succeeded).GroupBy(r => r.NodeId).ToList();
                Assert.Equal(10, committed.Count);
                Assert.All(committed, g => Assert.Single(g));
            }

            var runs = Lines(log).Select(l => l.Split(',')).GroupBy(p => (p[0], p[1])).ToList();
            Assert.Equal(Executions * 10, runs.Count);
            var duplicated = runs.Where(g => g.Count() > 1).ToList();
            foreach (var g in duplicated.Where(g => !g.Any(p => suspects(p[3]))))
            {
                // Say what the store recorded for the node: a lost lease, a takeover, the workers involved.
                var history = (await nova.GetHistoryAsync(Guid.Parse(g.Key.Item1)))!.Where(r => r.NodeId == g.Key.Item2)
                    .Select(r => $"{r.Status} attempt {r.Attempt} by {r.WorkerId} {r.StartedAt:HH:mm:ss.fff}-{r.EndedAt:HH:mm:ss.fff} {r.ErrorType}");
                Assert.Fail($"{g.Key} ran on {string.Join(", ", g.Select(p => p[3]))}, none of them in flight at the disruption; history: {string.Join("; ", history)}");
            }

            Assert.True(duplicated.Count <= maxDuplicates, $"{duplicated.Count} nodes ran twice; at most {maxDuplicates} were in flight");
            await client.StopAsync();
        }
        finally
        {
            foreach (var worker in workers)
            {
                worker.Dispose();
            }

            foreach (var file in Directory.GetFiles(Path.GetDirectoryName(log)!, Path.GetFileName(log) + ".*"))
            {
                File.Delete(file);
            }
        }
    }

    // Every worker process writes its own file (<log>.<worker>); a run is a complete line.
    private static string[] Lines(string log) =>
    [
        .. Directory.GetFiles(Path.GetDirectoryName(log)!, Path.GetFileName(log) + ".*").SelectMany(path =>
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd().Split('\n').SkipLast(1);
        }),
    ];
}
