"""Rank, local rank and node rank for workers spread over nodes (no Ray needed)."""

from lightning_tune.launchers.ranks import WorkerHost, assign_ranks


def test_uneven_interleaved_nodes():
    described = [WorkerHost("nodeA", "10.0.0.1", [], "eth0"), WorkerHost("nodeB", "10.0.0.2", [], "ens5"),
                 WorkerHost("nodeA", "10.0.0.1", [], "eth0"), WorkerHost("nodeA", "10.0.0.1", [], "eth0")]
    placements, envs = assign_ranks(described)
    assert [p.global_rank for p in placements] == [0, 1, 2, 3]
    assert [p.node_rank for p in placements] == [0, 1, 0, 0]
    assert [p.local_rank for p in placements] == [0, 0, 1, 2]
    assert [p.local_world_size for p in placements] == [3, 1, 3, 3]
    assert {p.world_size for p in placements} == {4} and {p.num_nodes for p in placements} == {2}
    assert {env["MASTER_ADDR"] for env in envs} == {"10.0.0.1"}  # rank 0's node
    assert [env["RANK"] for env in envs] == ["0", "1", "2", "3"]
    assert envs[1]["NODE_RANK"] == "1" and envs[3]["LOCAL_RANK"] == "2"
    assert all("CUDA_VISIBLE_DEVICES" not in env for env in envs)
    assert [env["GLOO_SOCKET_IFNAME"] for env in envs] == ["eth0", "ens5", "eth0", "eth0"]


def test_gpus_one_each_and_shared():
    described = [WorkerHost("n", "ip", ["3"], "lo"), WorkerHost("n", "ip", ["1"], "lo"),
                 WorkerHost("m", "ip2", ["0"], "lo"), WorkerHost("m", "ip2", ["0"], "lo")]
    placements, envs = assign_ranks(described)
    assert [env["CUDA_VISIBLE_DEVICES"] for env in envs] == ["3,1", "3,1", "0", "0"]
    assert [p.gpu_index for p in placements] == [0, 1, 0, 0]
    # ranks on one GPU are told so (NCCL cannot join them; their group uses gloo)
    assert [p.shares_gpu for p in placements] == [False, False, True, True]
    assert not any(p.shares_gpu for p in assign_ranks(
        [WorkerHost("n", "ip", [], "lo"), WorkerHost("n", "ip", [], "lo")])[0])
