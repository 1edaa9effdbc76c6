using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Nova.Workflow.Postgres;
using Nova.Workflow.Redis;

namespace Nova.Workflow.Samples;

/// <summary>The workflows and storage choice shared by the web API and the worker host.</summary>
public static class SampleWorkflows
{
    /// <summary>
    /// Picks storage from configuration: <c>Nova:Storage</c> = <c>InMemory</c> (default), <c>Redis</c>
    /// (<c>ConnectionStrings:Redis</c>), <c>Postgres</c> (<c>ConnectionStrings:Postgres</c>) or <c>Mixed</c>
    /// (Redis queue, PostgreSQL state); <c>Nova:Prefix</c> names the Redis key prefix / PostgreSQL schema.
    /// <c>Nova:Options</c> binds <see cref="NovaWorkflowOptions"/>.
    /// </summary>
    public static NovaWorkflowBuilder UseConfiguredStorage(this NovaWorkflowBuilder nova, IConfiguration configuration)
    {
        nova.Services.Configure<NovaWorkflowOptions>(configuration.GetSection("Nova:Options"));
        var storage = configuration["Nova:Storage"] ?? "InMemory";
        if (storage.Equals("Redis", StringComparison.OrdinalIgnoreCase))
        {
            nova.UseRedis(configuration.GetConnectionString("Redis") ?? "127.0.0.1:6379", o => o.Prefix = configuration["Nova:Prefix"] ?? "nova");
        }
        else if (storage.Equals("Postgres", StringComparison.OrdinalIgnoreCase))
        {
            nova.UsePostgres(configuration.GetConnectionString("Postgres") ?? "Host=127.0.0.1;Username=postgres", o => o.Schema = configuration["Nova:Prefix"] ?? "nova");
        }
        else if (storage.Equals("Mixed", StringComparison.OrdinalIgnoreCase))
        {
            nova.UseRedis(configuration.GetConnectionString("Redis") ?? "127.0.0.1:6379", o => o.Prefix = configuration["Nova:Prefix"] ?? "nova");
            nova.Services.AddSingleton(_ => Npgsql.NpgsqlDataSource.Create(configuration.GetConnectionString("Postgres") ?? "Host=127.0.0.1;Username=postgres"));
            nova.UsePostgresState(o => o.Schema = configuration["Nova:Prefix"] ?? "nova");
        }
        else if (!storage.Equals("InMemory", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidOperationException($"Nova:Storage '{storage}' is not one of InMemory, Redis, Postgres, Mixed.");
        }

        return nova;
    }

    /// <summary>Registers the sample handlers and workflows: <c>report</c> (a small DAG) and <c>chaos</c> (the crash-test DAG).</summary>
    public static NovaWorkflowBuilder AddSampleWorkflows(this NovaWorkflowBuilder nova)
    {
        nova.AddHandler("report.step", async (ctx, ct) =>
        {
            await Task.Delay(200, ct);
            ctx.ReportProgress(100);
            return JsonSerializer.SerializeToElement(new { node = ctx.NodeId, at = DateTimeOffset.UtcNow });
        });
        nova.AddWorkflow(new WorkflowBuilder("report")
            .Node("collect", "report.step")
            .Node("sales", "report.step", n => n.DependsOn("collect"))
            .Node("costs", "report.step", n => n.DependsOn("collect"))
            .Node("render", "report.step", n => n.DependsOn("sales", "costs"))
            .Build());

        // The crash-test DAG: 10 nodes in 4 layers; every run appends "execution,node,attempt,worker" to
        // NOVA_CHAOS_LOG.<worker name> (one file per process: appends from several processes could interleave).
        nova.AddHandler("chaos.step", async (ctx, ct) =>
        {
            if (Environment.GetEnvironmentVariable("NOVA_CHAOS_LOG") is { Length: > 0 } log)
            {
                var worker = Environment.GetEnvironmentVariable("NOVA_WORKER_NAME") ?? "worker";
                await ChaosLog.AppendAsync($"{log}.{worker}", $"{ctx.ExecutionId:N},{ctx.NodeId},{ctx.Attempt},{worker}\n", ct);
            }

            await Task.Delay(Random.Shared.Next(1, 6), ct);
            return null;
        });
        nova.AddWorkflow(new WorkflowBuilder("chaos")
            .Node("n0", "chaos.step")
            .Node("n1", "chaos.step", n => n.DependsOn("n0")).Node("n2", "chaos.step", n => n.DependsOn("n0")).Node("n3", "chaos.step", n => n.DependsOn("n0"))
            .Node("n4", "chaos.step", n => n.DependsOn("n1", "n2")).Node("n5", "chaos.step", n => n.DependsOn("n2", "n3")).Node("n6", "chaos.step", n => n.DependsOn("n3"))
            .Node("n7", "chaos.step", n => n.DependsOn("n4")).Node("n8", "chaos.step", n => n.DependsOn("n5", "n6"))
            .Node("n9", "chaos.step", n => n.DependsOn("n7", "n8"))
            .Build());
        return nova;
    }
}

/// <summary>Appends lines to this process's log file, one writer at a time.</summary>
internal static class ChaosLog
{
    private static readonly SemaphoreSlim Gate = new(1, 1);

    public static async Task AppendAsync(string path, string line, CancellationToken cancellationToken)
    {
        await Gate.WaitAsync(cancellationToken);
        try
        {
            await using var stream = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
            await stream.WriteAsync(System.Text.Encoding.UTF8.GetBytes(line), cancellationToken);
        }
        finally
        {
            Gate.Release();
        }
    }
}
